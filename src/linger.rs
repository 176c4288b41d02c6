//! The tail of `end(data)`: when the kernel takes only part of the final chunk, the rest is kept
//! here and flushed in the background before the FIN, so `end(data)` always delivers the whole
//! chunk (the JS socket is already closed and its `close` handler has run, as in Bun). A
//! lingering flush keeps the process alive until it is done, as Node's `end()` does.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use mio::{Interest, Token};

use crate::conn::Io;
use crate::reactor::{self, Entry};

pub(crate) struct Linger {
  io: RefCell<Option<Io>>,
  rest: RefCell<Vec<u8>>,
  token: Cell<Token>,
}

/// Takes over `io` to send `rest`, then FIN.
pub(crate) fn start(mut io: Io, rest: Vec<u8>) {
  let l = Rc::new(Linger { io: RefCell::new(None), rest: RefCell::new(rest), token: Cell::new(Token(usize::MAX)) });
  let registered = reactor::with(|r| {
    let t = r.insert(Entry::Linger(l.clone()));
    l.token.set(t);
    r.adjust_refs(1);
    r.poll.registry().register(io.source(), t, Interest::WRITABLE)
  });
  *l.io.borrow_mut() = Some(io);
  match registered {
    Some(Ok(())) => l.flush(),
    _ => l.finish(),
  }
}

impl Linger {
  /// Sends what the kernel takes; finishes once everything is out or the peer is gone.
  pub(crate) fn flush(&self) {
    let done = {
      let (Ok(io), Ok(mut rest)) = (self.io.try_borrow(), self.rest.try_borrow_mut()) else { return };
      let Some(fd) = io.as_ref().map(Io::fd) else { return };
      loop {
        if rest.is_empty() {
          break true;
        }
        let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
        if n >= 0 {
          rest.drain(..n as usize);
          continue;
        }
        match io::Error::last_os_error().raw_os_error() {
          Some(libc::EINTR) => continue,
          Some(libc::EAGAIN) => break false,
          _ => break true,
        }
      }
    };
    if done {
      self.finish();
    }
  }

  fn finish(&self) {
    let Some(mut io) = self.io.try_borrow_mut().ok().and_then(|mut g| g.take()) else { return };
    let token = self.token.get();
    reactor::with(|r| {
      let _ = r.poll.registry().deregister(io.source());
      r.remove(token);
      r.adjust_refs(-1);
    });
    unsafe { libc::shutdown(io.fd(), libc::SHUT_WR) };
    crate::sockopt::discard_input(io.fd());
  }

  /// Env teardown: drop the fd without flushing.
  pub(crate) fn teardown(&self) {
    if let Ok(mut io) = self.io.try_borrow_mut() {
      io.take();
    }
  }
}
