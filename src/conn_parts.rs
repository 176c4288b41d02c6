//! The parts of a connection's state laid out for memory per idle connection (bench/NOTES.md):
//! the rarely used fields behind one box allocated on first use ([`Extra`]), the peer address in
//! 16 bytes ([`Remote`]), and a unit test that keeps `Conn` in its malloc size class.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;

use crate::conn::ConnState;

/// The peer's address in 16 bytes: IPv4 inline, IPv6 boxed (`Option<SocketAddr>` takes 32 on
/// every connection).
pub(crate) enum Remote {
  V4(SocketAddrV4),
  V6(Box<SocketAddrV6>),
}

impl Remote {
  pub(crate) fn new(a: SocketAddr) -> Remote {
    match a {
      SocketAddr::V4(a) => Remote::V4(a),
      SocketAddr::V6(a) => Remote::V6(Box::new(a)),
    }
  }

  pub(crate) fn get(&self) -> SocketAddr {
    match self {
      Remote::V4(a) => SocketAddr::V4(*a),
      Remote::V6(a) => SocketAddr::V6(**a),
    }
  }
}

/// Bits of [`ConnState::seen`].
pub(crate) const SEEN_REMOTE_ADDRESS: u8 = 1;
pub(crate) const SEEN_LOCAL_ADDRESS: u8 = 2;
pub(crate) const SEEN_LOCAL_PORT: u8 = 4;

/// The rarely used part of [`ConnState`].
#[derive(Default)]
pub(crate) struct Extra {
  /// The one-shot deadline of `socket.timeout()`.
  pub timeout_at: Option<Instant>,
  /// The earliest reactor timer entry queued for this socket. `timeout()` called again with a
  /// later deadline (the common "re-arm on every data" pattern) queues nothing new: the queued
  /// entry re-queues itself when it comes due early, so the timer heap stays one entry per socket.
  pub timer_queued: Option<Instant>,
  /// The part of `end(data)` the kernel did not take yet, flushed before the FIN.
  pub unsent: Option<Vec<u8>>,
  /// Client sockets connected by host name (not an IP literal): the name, the SNI default for
  /// `upgradeTLS` (an IP literal is the remote address, which is kept anyway).
  pub host: Option<Box<str>>,
  /// A client TLS start waiting for `open` to return (see `tls::PendingClient`).
  pub pending_tls: Option<Box<crate::tls::PendingClient>>,
  /// A reset seen by `send()` (errno), reported by the close instead of a clean end.
  pub reset: Option<i32>,
  /// Client sockets until the connect settles: addresses left to try, the promise, TLS options.
  pub pending: Option<Box<crate::conn::Pending>>,
  /// TLS: `end()`/`close()` or `shutdown()` called before the handshake ended, carried out once
  /// it has (so the bytes `write()`/`end()` took go out encrypted first).
  pub after_handshake: Option<AfterHandshake>,
  /// The local address at the close, kept when `localAddress`/`localPort` were read before it.
  pub local: Option<std::net::SocketAddr>,
}

/// What a TLS socket was asked to do while its handshake was still running.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AfterHandshake {
  /// `shutdown()`: close_notify and the FIN after the taken bytes.
  Shutdown,
  /// `end()`/`close()`: the same, then the close.
  End,
}

impl Extra {
  /// Nothing kept: the box can go (listed by destructuring, so a new field cannot be forgotten).
  fn is_empty(&self) -> bool {
    let Extra { timeout_at, timer_queued, unsent, host, pending_tls, reset, pending, after_handshake, local } = self;
    timeout_at.is_none()
      && timer_queued.is_none()
      && unsent.is_none()
      && host.is_none()
      && pending_tls.is_none()
      && reset.is_none()
      && pending.is_none()
      && after_handshake.is_none()
      && local.is_none()
  }
}

impl ConnState {
  pub(crate) fn extra(&self) -> Option<&Extra> {
    self.extra.as_deref()
  }

  pub(crate) fn extra_mut(&mut self) -> &mut Extra {
    self.extra.get_or_insert_with(Box::default)
  }

  pub(crate) fn pending_tls(&mut self) -> Option<&mut crate::tls::PendingClient> {
    self.extra.as_mut().and_then(|x| x.pending_tls.as_deref_mut())
  }

  pub(crate) fn pending(&self) -> Option<&crate::conn::Pending> {
    self.extra().and_then(|x| x.pending.as_deref())
  }

  pub(crate) fn pending_mut(&mut self) -> Option<&mut crate::conn::Pending> {
    self.extra.as_mut().and_then(|x| x.pending.as_deref_mut())
  }

  /// Takes the pending connect; an `Extra` left with nothing in it is freed, so a connected client
  /// is as small as an accepted socket.
  pub(crate) fn take_pending(&mut self) -> Option<Box<crate::conn::Pending>> {
    let x = self.extra.as_mut()?;
    let p = x.pending.take();
    if x.is_empty() {
      self.extra = None;
    }
    p
  }

  pub(crate) fn has_pending_tls(&self) -> bool {
    self.extra().is_some_and(|x| x.pending_tls.is_some())
  }

  /// A TLS socket whose handshake has not ended yet (its session pending or still handshaking).
  pub(crate) fn tls_handshaking(&self) -> bool {
    self.has_pending_tls() || self.tls.as_ref().is_some_and(|t| !t.done)
  }

  /// Records the peer address (TCP; `None` for unix sockets) and the family it implies.
  pub(crate) fn set_remote(&mut self, remote: Option<SocketAddr>) {
    self.is_v6 = remote.is_some_and(|a| a.is_ipv6());
    self.remote = remote.map(Remote::new);
  }
}

#[cfg(test)]
mod tests {
  /// An idle connection's native state is one allocation of this size plus the Rc counts (16):
  /// at most 104 keeps it in glibc's 128-byte chunk (bench/NOTES.md, memory per idle connection).
  #[test]
  fn conn_stays_small() {
    let n = std::mem::size_of::<crate::conn::Conn>();
    println!("Conn: {n} bytes");
    assert!(n <= 104, "Conn grew to {n} bytes");
    assert_eq!(std::mem::size_of::<Option<crate::handlers::HandlerRef>>(), 8);
  }
}
