//! Closing a connection: the fd first (gracefully, with a reset, or after the peer's close),
//! then its `close` handlers, now or (TLS `end()`/`close()`) on the next loop turn.

use std::rc::Rc;

use napi::sys;

use crate::conn::{call_routed, Conn, How, Io, Phase};
use crate::conn_parts::{SEEN_LOCAL_ADDRESS, SEEN_LOCAL_PORT};
use crate::handlers::{Event, HandlerRef};
use crate::js::{self, Env, Value};
use crate::listener::ListenerCore;
use crate::reactor;

/// Closes `conn` (idempotent) and runs its `close(socket, err)` handler synchronously.
pub(crate) fn close(env: Env, conn: &Conn, how: How, err: Option<Value>) {
  if let Some(closed) = shut(conn, how, err.is_some()) {
    closed.report(env, err);
  }
}

/// `end()`/`close()` on a TLS socket: closed now, but the `close` handler runs after the call
/// returns (on the next loop turn), as in Bun (spec §5.3).
pub(crate) fn close_then_report(conn: &Conn) {
  if let Some(closed) = shut(conn, How::Graceful, false) {
    let _ = reactor::with(|r| r.report_later(closed));
  }
}

/// What is left to do for a connection whose fd is closed: its `close` handlers.
pub(crate) struct Closed {
  slot: Option<HandlerRef>,
  js_ref: sys::napi_ref,
  listener: Option<Rc<ListenerCore>>,
  tap: Option<Box<crate::tls::Tap>>,
}

/// Closes the fd (gracefully, with a reset, or after the peer's) and takes the connection out of
/// the reactor; `None` if it was closed already.
fn shut(conn: &Conn, how: How, with_error: bool) -> Option<Closed> {
  let closed = {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return None };
    if st.phase == Phase::Closed {
      return None;
    }
    st.phase = Phase::Closed;
    crate::debug::debug!("close fd {} ({:?}{})", st.io.as_ref().map_or(-1, Io::fd), how, if with_error { ", with error" } else { "" });
    if how == How::Graceful && st.tls.is_some() {
      crate::tls::on_close(&mut st);
      if let Some(fd) = st.io.as_ref().map(Io::fd) {
        crate::sockopt::discard_input(fd);
      }
    }
    // Closing the fd removes it from the epoll set and sends the FIN (no separate deregister or
    // shutdown syscalls: the fd is never duplicated, and the poller keeps no per-registration
    // state).
    // A graceful TLS close waits for the peer's FIN in the background (see `linger`), unless the
    // peer's FIN is here already.
    let await_peer = how == How::Graceful && st.tls.is_some() && !st.read_eof;
    if st.seen & (SEEN_LOCAL_ADDRESS | SEEN_LOCAL_PORT) != 0 {
      // Read while open: keeps answering after the close (see `socket::addr`).
      if let Some(a) = st.io.as_ref().and_then(|io| crate::sockopt::local_addr(io.fd())) {
        st.extra_mut().local = Some(a);
      }
    }
    if let Some(io) = st.io.take() {
      match (how, st.extra.as_mut().and_then(|x| x.unsent.take())) {
        (How::Graceful, rest) if rest.is_some() || await_peer => {
          let token = conn.token.get();
          let _ = reactor::with(|r| r.deregister(io.fd(), token));
          crate::linger::start(io, rest.unwrap_or_default(), await_peer);
        }
        (How::Reset, _) => crate::sockopt::linger_zero(io.fd()),
        (How::Graceful, _) | (How::Gone, _) => {}
      }
    }
    if let Some(x) = st.extra.as_mut() {
      x.timeout_at = None;
    }
    st.want_drain = false;
    let tap = st.tls.as_mut().and_then(|t| t.tap.take());
    Closed { slot: st.handlers.take(), js_ref: crate::socket::SocketHandle::take_ref(&mut st.js), listener: st.listener.take(), tap }
  };
  let token = conn.token.get();
  reactor::with(|r| r.remove(token));
  conn.sync_ref();
  if let Some(l) = &closed.listener {
    l.forget();
  }
  Some(closed)
}

impl Closed {
  /// Runs the `close` handlers (the original ones of an upgradeTLS first, with `raw`).
  pub(crate) fn report(self, env: Env, err: Option<Value>) {
    let e = err.unwrap_or_else(|| js::undefined(env));
    if let Some(tap) = self.tap {
      if let (Ok(raw), Some(h)) = (js::deref(env, tap.raw), tap.handlers.current()) {
        call_routed(env, &h, Event::Close, raw, &[e]);
      }
      js::delete_reference(env, tap.raw);
    }
    if let (Some(h), Ok(socket)) = (self.slot.and_then(|s| s.current()), js::deref(env, self.js_ref)) {
      call_routed(env, &h, Event::Close, socket, &[e]);
    }
    crate::class::release(env, self.js_ref);
    if let Some(l) = self.listener {
      l.release_if_done(env);
    }
  }

  /// Env teardown: drops the references without calling JS.
  pub(crate) fn forget(self, env: Env) {
    if let Some(tap) = self.tap {
      js::delete_reference(env, tap.raw);
    }
    crate::class::release(env, self.js_ref);
  }
}
