//! How a TLS handshake ends for the handlers: `handshake`/`open` after success, the failed
//! handshake or fatal error, and the `end()`/`close()`/`shutdown()` calls made while it ran, which
//! wait for its end.

use crate::conn::{self, Conn, How, Phase};
use crate::conn_parts::AfterHandshake;
use crate::handlers::Event;
use crate::js::{self, Env};

use super::errors::{self, verify_error_js};
use super::verify::VerifyError;
use super::{flush_state, shutdown_write};

/// A TLS socket whose handshake is still running cannot send the bytes `write()`/`end()` took
/// yet: it stops taking more now (writes return `-1`), and `what` is done once the handshake has
/// ended (see [`handshake_done`]), after those bytes; a failed handshake is reported as usual
/// (`handshake(s, false, err)`, then `close`). Bun returns `0` from such writes and drops them.
/// `false` when the socket is not in that state.
pub(crate) fn defer_until_handshake(conn: &Conn, what: AfterHandshake) -> bool {
  let Ok(mut st) = conn.st.try_borrow_mut() else { return false };
  if st.phase != Phase::Open || !st.tls_handshaking() {
    return false;
  }
  st.write_shut = true;
  if what == AfterHandshake::End {
    st.want_drain = false;
  }
  let x = st.extra_mut();
  if x.after_handshake != Some(AfterHandshake::End) {
    x.after_handshake = Some(what);
  }
  true
}

/// The handshake completed: work out `authorized`/`authorizationError` the way Node and Bun do,
/// then `handshake(...)` or (without that handler) `open`.
pub(crate) fn handshake_done(env: Env, c: &Conn) {
  let (success, err) = {
    let Ok(mut st) = c.st.try_borrow_mut() else { return };
    let Some(t) = st.tls.as_mut() else { return };
    t.done = true;
    let mut recorded = t.recorded.take();
    if !t.server {
      // A resumed handshake verifies nothing: the verdict of the full handshake the session came
      // from applies (unknown: not authorized).
      let resumed = t.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
      match (resumed, t.sessions) {
        (true, Some(slot)) => {
          recorded = slot.verdict().unwrap_or_else(|| Some(VerifyError::new("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate")));
        }
        (true, None) => recorded = Some(VerifyError::new("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate")),
        (false, Some(slot)) => slot.set_verdict(recorded.clone()),
        (false, None) => {}
      }
    }
    let has_peer_cert = t.conn.peer_certificates().is_some_and(|p| !p.is_empty());
    let (authorized, error, success) = if t.server && (!t.request_cert || !has_peer_cert) {
      (false, Some(VerifyError::new("UNABLE_TO_GET_ISSUER_CERT", "unable to get issuer certificate")), true)
    } else {
      match recorded {
        None => (true, None, true),
        Some(e) => {
          let tolerated = t.server || e.code != "ERR_TLS_CERT_ALTNAME_INVALID";
          (false, Some(e), tolerated)
        }
      }
    };
    t.authorized = authorized;
    t.auth_error = error.clone();
    (success, error)
  };
  let has_handshake = c.handlers().is_some_and(|h| h.has(Event::Handshake));
  if has_handshake {
    let e = err.map_or_else(|| js::null(env), |e| verify_error_js(env, &e));
    conn::emit(env, c, Event::Handshake, &[js::boolean(env, success), e]);
  } else if !opened(c) {
    mark_opened(c);
    conn::emit_open(env, c);
  }
  // Writes made before the handshake that were cut short get their drain now.
  let drain = match c.st.try_borrow_mut() {
    Ok(mut st) if st.phase == Phase::Open && st.want_drain => {
      let flushed = flush_state(&mut st);
      st.want_drain = !flushed;
      flushed
    }
    _ => false,
  };
  if drain {
    conn::emit(env, c, Event::Drain, &[]);
  }
  after_handshake(env, c);
}

/// `end()`/`close()`/`shutdown()` called while the handshake ran ([`defer_until_handshake`]):
/// carried out now, after the bytes taken meanwhile (the session encrypted them as the handshake
/// completed; a close sends what the kernel does not take in the background).
fn after_handshake(env: Env, c: &Conn) {
  let what = match c.st.try_borrow_mut() {
    Ok(mut st) if st.phase == Phase::Open => st.extra.as_mut().and_then(|x| x.after_handshake.take()),
    _ => None,
  };
  match what {
    Some(AfterHandshake::End) => conn::close(env, c, How::Graceful, None),
    Some(AfterHandshake::Shutdown) => {
      if let Ok(mut st) = c.st.try_borrow_mut() {
        shutdown_write(&mut st);
      }
    }
    None => {}
  }
}

fn opened(c: &Conn) -> bool {
  c.st.try_borrow().ok().and_then(|st| st.tls.as_ref().map(|t| t.opened)).unwrap_or(true)
}

pub(crate) fn mark_opened(c: &Conn) {
  if let Ok(mut st) = c.st.try_borrow_mut() {
    if let Some(t) = st.tls.as_mut() {
      t.opened = true;
    }
  }
}

/// A TLS failure: during the handshake, `handshake(s, false, err)` (or, without that handler,
/// `open` once) then `close`; after it, `error(s, err)` then `close`. Never a silent clean close.
pub(crate) fn handshake_or_fatal(env: Env, c: &Conn, cause: Result<(), rustls::Error>) {
  let (done, recorded, server) = {
    let Ok(mut st) = c.st.try_borrow_mut() else { return };
    flush_state(&mut st);
    let Some(t) = st.tls.as_mut() else { return };
    let done = t.done;
    t.done = true;
    (done, t.recorded.take(), t.server)
  };
  // A client that refuses the server's certificate sends an alert; BoringSSL's clients just
  // close, so a server under Bun sees the disconnect, not the alert.
  let refused_by_client = server
    && !done
    && matches!(
      &cause,
      Err(rustls::Error::AlertReceived(
        rustls::AlertDescription::BadCertificate
          | rustls::AlertDescription::UnsupportedCertificate
          | rustls::AlertDescription::CertificateRevoked
          | rustls::AlertDescription::CertificateExpired
          | rustls::AlertDescription::CertificateUnknown
          | rustls::AlertDescription::UnknownCA
      ))
    );
  let err = match (&cause, recorded) {
    (_, Some(v)) => verify_error_js(env, &v),
    (Err(e), None) if !refused_by_client => errors::protocol(env, e),
    (_, None) => errors::disconnected(env),
  };
  if done {
    conn::emit(env, c, Event::Error, &[err]);
  } else if c.handlers().is_some_and(|h| h.has(Event::Handshake)) {
    conn::emit(env, c, Event::Handshake, &[js::boolean(env, false), err]);
  } else if !opened(c) {
    mark_opened(c);
    conn::emit_open(env, c);
  }
  conn::close(env, c, How::Gone, None);
}
