//! `socket.timeout(seconds)`: a one-shot deadline per socket (not reset by I/O, never closes the
//! socket), kept in the reactor's timer heap with at most one queued entry per socket.

use std::time::Instant;

use crate::conn::{emit, Conn, Phase};
use crate::handlers::Event;
use crate::js::Env;
use crate::reactor;

/// Arms (`Some`) or disarms the one-shot timeout of an open socket.
pub(crate) fn set(conn: &Conn, at: Option<Instant>) {
  let queue = {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return };
    // Disarming a socket that never had a timeout has nothing to clear: no `Extra` for it.
    if st.phase != Phase::Open || (at.is_none() && st.extra.is_none()) {
      return;
    }
    let x = st.extra_mut();
    x.timeout_at = at;
    match (at, x.timer_queued) {
      (Some(at), None) => Some(at),
      (Some(at), Some(q)) if at < q => Some(at),
      _ => None,
    }
  };
  if let Some(at) = queue {
    if let Ok(mut st) = conn.st.try_borrow_mut() {
      st.extra_mut().timer_queued = Some(at);
    }
    reactor::with(|r| r.schedule(at, conn.token.get()));
  }
}

/// A queued timer entry for `conn` came due at `at`: fire if the deadline has passed, re-queue if
/// it was moved later.
pub(crate) fn on_timeout(env: Env, conn: &Conn, at: Instant) {
  let fire = {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return };
    if st.phase != Phase::Open || st.extra().and_then(|x| x.timer_queued) != Some(at) {
      return;
    }
    let x = st.extra_mut();
    x.timer_queued = None;
    match x.timeout_at {
      Some(deadline) if deadline <= at => {
        x.timeout_at = None;
        true
      }
      Some(later) => {
        drop(st);
        set(conn, Some(later));
        false
      }
      None => false,
    }
  };
  if fire {
    emit(env, conn, Event::Timeout, &[]);
  }
}

