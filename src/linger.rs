//! The tail of `end(data)`: when the kernel takes only part of the final chunk, the rest is kept
//! here and flushed in the background before the FIN, so `end(data)` always delivers the whole
//! chunk (the JS socket is already closed and its `close` handler has run, as in Bun). A
//! lingering flush keeps the process alive until it is done, as Node's `end()` does.
//!
//! The application has no handle left to abort it, so a flush is bounded the way the kernel
//! bounds an orphaned socket: when the peer takes no byte for [`stall_limit`] (60 s; a peer that
//! stopped reading, or one that closed and keeps advertising a zero window), the connection is
//! reset (RST), which the peer sees as `ECONNRESET`, instead of being held forever.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mio::Token;

use crate::conn::Io;
use crate::reactor::{self, Entry};

pub(crate) struct Linger {
  io: RefCell<Option<Io>>,
  rest: RefCell<Vec<u8>>,
  token: Cell<Token>,
  /// When the kernel last took bytes (or the flush started).
  progress: Cell<Instant>,
}

/// How long a flush may go without the kernel taking a byte: 60 s, or `BUNNET_LINGER_STALL_MS`
/// (read once; the tests use it to exercise the reset without waiting a minute).
fn stall_limit() -> Duration {
  static LIMIT: OnceLock<Duration> = OnceLock::new();
  *LIMIT.get_or_init(|| {
    let ms = std::env::var("BUNNET_LINGER_STALL_MS").ok().and_then(|v| v.parse::<u64>().ok());
    Duration::from_millis(ms.unwrap_or(60_000))
  })
}

/// Takes over `io` to send `rest`, then FIN.
pub(crate) fn start(io: Io, rest: Vec<u8>) {
  let now = Instant::now();
  let l = Rc::new(Linger { io: RefCell::new(None), rest: RefCell::new(rest), token: Cell::new(Token(usize::MAX)), progress: Cell::new(now) });
  let registered = reactor::with(|r| {
    let t = r.insert(Entry::Linger(l.clone()));
    l.token.set(t);
    r.adjust_refs(1);
    r.schedule(now + stall_limit(), t);
    r.register(io.fd(), t, crate::poller::WRITE)
  });
  *l.io.borrow_mut() = Some(io);
  match registered {
    Some(Ok(())) => l.flush(),
    _ => l.finish(),
  }
}

impl Linger {
  /// The fd being flushed, until released.
  pub(crate) fn fd(&self) -> Option<std::os::fd::RawFd> {
    self.io.try_borrow().ok()?.as_ref().map(Io::fd)
  }

  /// Sends what the kernel takes; finishes once everything is out or the peer is gone.
  pub(crate) fn flush(&self) {
    let done = {
      let (Ok(io), Ok(mut rest)) = (self.io.try_borrow(), self.rest.try_borrow_mut()) else { return };
      let Some(fd) = io.as_ref().map(Io::fd) else { return };
      loop {
        if rest.is_empty() {
          break true;
        }
        let err = match crate::fdio::send(fd, &rest) {
          Ok(n) => {
            rest.drain(..n);
            if n > 0 {
              self.progress.set(Instant::now());
            }
            continue;
          }
          Err(e) => e,
        };
        match err.raw_os_error() {
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

  /// The stall check queued for `at` came due: reset if nothing was taken since the limit,
  /// else check again one limit after the last progress.
  pub(crate) fn on_timer(&self) {
    let next = self.progress.get() + stall_limit();
    if Instant::now() < next {
      reactor::with(|r| r.schedule(next, self.token.get()));
      return;
    }
    let Some(io) = self.release() else { return };
    crate::debug::debug!("linger fd {} reset: no progress for {:?}", io.fd(), stall_limit());
    crate::sockopt::linger_zero(io.fd());
  }

  fn finish(&self) {
    let Some(io) = self.release() else { return };
    unsafe { libc::shutdown(io.fd(), libc::SHUT_WR) };
    crate::sockopt::discard_input(io.fd());
  }

  /// Takes the fd out of the reactor (the caller closes it by dropping it).
  fn release(&self) -> Option<Io> {
    let io = self.io.try_borrow_mut().ok().and_then(|mut g| g.take())?;
    let token = self.token.get();
    reactor::with(|r| {
      let _ = r.deregister(io.fd(), token);
      r.remove(token);
      r.adjust_refs(-1);
    });
    Some(io)
  }

  /// Env teardown: drop the fd without flushing.
  pub(crate) fn teardown(&self) {
    if let Ok(mut io) = self.io.try_borrow_mut() {
      io.take();
    }
  }
}
