//! The tail of `end(data)`: when the kernel takes only part of the final chunk, the rest is kept
//! here and flushed in the background before the FIN, so `end(data)` always delivers the whole
//! chunk (the JS socket is already closed and its `close` handler has run, as in Bun). A
//! lingering flush keeps the process alive until it is done, as Node's `end()` does.
//!
//! The application has no handle left to abort it, so a flush is bounded the way the kernel
//! bounds an orphaned socket: when the peer takes no byte for [`stall_limit`] (60 s; a peer that
//! stopped reading, or one that closed and keeps advertising a zero window), the connection is
//! reset (RST), which the peer sees as `ECONNRESET`, instead of being held forever.
//!
//! TLS closes also wait for the peer ([`start`] with `await_peer`): after the last record (the
//! close_notify) the write side is shut and input is read and dropped until the peer's FIN. A TLS
//! 1.3 server sends its session tickets after the client's last handshake message, so a client
//! that ends right after the handshake would otherwise get them on a closed fd, and the kernel
//! answers data on a closed socket with a reset, which discards what the peer was still to
//! receive. The wait ends at the peer's FIN or error, or [`GRACE`] after the peer acknowledged
//! every byte with nothing more arriving (a peer that keeps its side open), or at the stall limit.

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
  /// When the kernel last took bytes (or the flush started); in the wait for the peer, when
  /// bytes last arrived or the peer last acknowledged some.
  progress: Cell<Instant>,
  /// Wait for the peer's FIN after the flush (TLS).
  await_peer: bool,
  /// In that wait since: the write side is shut.
  waiting: Cell<Option<Instant>>,
  /// Bytes not yet acknowledged by the peer at the last check of the wait.
  unacked: Cell<usize>,
}

/// How long the wait for the peer's FIN lasts once the peer has acknowledged every byte and sends
/// nothing more.
const GRACE: Duration = Duration::from_secs(2);

/// How long a flush may go without the kernel taking a byte: 60 s, or `BUNNET_LINGER_STALL_MS`
/// (read once; the tests use it to exercise the reset without waiting a minute).
fn stall_limit() -> Duration {
  static LIMIT: OnceLock<Duration> = OnceLock::new();
  *LIMIT.get_or_init(|| {
    let ms = std::env::var("BUNNET_LINGER_STALL_MS").ok().and_then(|v| v.parse::<u64>().ok());
    Duration::from_millis(ms.unwrap_or(60_000))
  })
}

/// Takes over `io` to send `rest`, then FIN; with `await_peer`, then also waits for the peer's.
pub(crate) fn start(io: Io, rest: Vec<u8>, await_peer: bool) {
  let now = Instant::now();
  let l = Rc::new(Linger {
    io: RefCell::new(None),
    rest: RefCell::new(rest),
    token: Cell::new(Token(usize::MAX)),
    progress: Cell::new(now),
    await_peer,
    waiting: Cell::new(None),
    unacked: Cell::new(usize::MAX),
  });
  let registered = reactor::with(|r| {
    let t = r.insert(Entry::Linger(l.clone()));
    l.token.set(t);
    r.adjust_refs(1);
    r.schedule(now + stall_limit(), t);
    r.register(io.fd(), t, l.interest())
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

  /// The readiness this flush waits for.
  pub(crate) fn interest(&self) -> u32 {
    if self.await_peer {
      crate::poller::CONN
    } else {
      crate::poller::WRITE
    }
  }

  /// Sends what the kernel takes; finishes once everything is out or the peer is gone.
  pub(crate) fn flush(&self) {
    if self.waiting.get().is_some() {
      return self.read_peer();
    }
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
    if let Some(since) = self.waiting.get() {
      return self.check_wait(since);
    }
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
    if self.await_peer {
      let Some(fd) = self.fd() else { return };
      unsafe { libc::shutdown(fd, libc::SHUT_WR) };
      let now = Instant::now();
      self.waiting.set(Some(now));
      self.progress.set(now);
      reactor::with(|r| r.schedule(now + GRACE, self.token.get()));
      return self.read_peer();
    }
    let Some(io) = self.release() else { return };
    unsafe { libc::shutdown(io.fd(), libc::SHUT_WR) };
    crate::sockopt::discard_input(io.fd());
  }

  /// The wait for the peer's FIN: drops what arrives; closes at the FIN or an error.
  fn read_peer(&self) {
    let Some(fd) = self.fd() else { return };
    // Until the queue is empty: the readiness is edge-triggered.
    let (input, got) = crate::sockopt::drop_input(fd, usize::MAX);
    if got {
      self.progress.set(Instant::now());
    }
    if input == crate::sockopt::Input::Ended {
      drop(self.release());
    }
  }

  /// The wait's timer: closes once the peer has acknowledged every byte and been quiet for
  /// [`GRACE`], or (bytes still unacknowledged) made no progress for the stall limit.
  fn check_wait(&self, since: Instant) {
    let Some(fd) = self.fd() else { return };
    let now = Instant::now();
    let unacked = crate::sockopt::unacked(fd);
    if unacked < self.unacked.get() {
      self.progress.set(now);
    }
    self.unacked.set(unacked);
    let quiet = if unacked == 0 { GRACE } else { stall_limit() };
    let end = (self.progress.get() + quiet).min(since + stall_limit().max(GRACE));
    if now >= end {
      crate::debug::debug!("linger fd {fd}: closed without the peer's FIN ({unacked} bytes unacknowledged)");
      drop(self.release());
      return;
    }
    reactor::with(|r| r.schedule(end.min(now + GRACE), self.token.get()));
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
