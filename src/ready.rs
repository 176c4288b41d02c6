//! Readiness of a registered connection turned into handler calls: the dispatch of one report
//! (connect completion, TLS, drain, reads), the read loop delivering `data`, the peer's FIN, and
//! the close of a socket whose reads cannot see a reset. Split from `conn` (the state), which
//! re-exports these.

use std::io;
use std::rc::Rc;

use crate::conn::{close, emit, route_error, routed, Conn, How, Phase};
use crate::error::SysError;
use crate::handlers::{BinaryType, Event, HandlerRef, Handlers};
use crate::js::{Called, Env, HandleScope};
use crate::poller::Ready;
use crate::readbuf::{self, Read};

/// Readiness for a registered connection.
pub(crate) fn on_event(env: Env, conn: &Rc<Conn>, ev: &Ready) {
  // Paused, or past the peer's FIN: no read will see a reset (see `on_error_unread`).
  let (phase, tls, unread, reset_seen) = match conn.st.try_borrow() {
    Ok(st) => (st.phase, st.tls.is_some(), st.paused || st.read_eof, st.extra().is_some_and(|x| x.reset.is_some())),
    Err(_) => return,
  };
  if phase == Phase::Open && unread && (ev.is_error() || (ev.is_read_closed() && reset_seen)) {
    return on_error_unread(env, conn);
  }
  match phase {
    Phase::Connecting => crate::connect::on_connect_event(env, conn, ev),
    Phase::Open if tls => {
      // As below: a report carrying an error owes no drain (nor a flush: the peer is gone).
      crate::tls::on_event(env, conn, ev.is_writable() && !ev.is_error(), ev.is_readable(), ev.is_read_closed() || ev.is_error());
    }
    Phase::Open => {
      let error = ev.is_error();
      // An error (a reset) owes no drain: the read that follows reports it and closes.
      if ev.is_writable() && !error {
        on_writable(env, conn);
      }
      if ev.is_readable() || ev.is_read_closed() || error {
        on_readable(env, conn, ev.is_read_closed() || error);
      }
    }
    Phase::Resolving | Phase::Closed => {}
  }
}

/// An error (the peer's reset) on a socket (plain or TLS) that reads nothing now: paused, or half-open
/// after the peer's FIN (the reset then answers our own later writes; when a write met it first
/// and took the socket's error, the report has HUP without ERR and the recorded reset is used). As in Bun, the socket closes
/// at once with that error (`ECONNRESET`, or `EPIPE` after the FIN), its unread bytes dropped as a
/// reset drops them; otherwise no read would ever see it and `close` would never run.
fn on_error_unread(env: Env, conn: &Conn) {
  let (taken, recorded) = match conn.st.try_borrow() {
    Ok(st) => (st.io.as_ref().and_then(|io| io.take_error().ok().flatten()), st.extra().and_then(|x| x.reset)),
    Err(_) => return,
  };
  let e = taken.unwrap_or_else(|| io::Error::from_raw_os_error(recorded.unwrap_or(libc::ECONNRESET)));
  let err = SysError::from_io(&e, "read").to_js(env);
  close(env, conn, How::Gone, Some(err));
}

/// A revisit asked for with [`crate::reactor::Reactor::kick`].
pub(crate) fn on_kick(env: Env, conn: &Conn) {
  let tls = conn.st.try_borrow().is_ok_and(|st| st.phase == Phase::Open && st.tls.is_some());
  if tls {
    crate::tls::on_resume(env, conn);
  }
}

fn on_writable(env: Env, conn: &Conn) {
  let owed = match conn.st.try_borrow_mut() {
    Ok(mut st) if st.phase == Phase::Open && st.want_drain => {
      st.want_drain = false;
      !st.write_shut
    }
    _ => false,
  };
  if owed {
    emit(env, conn, Event::Drain, &[]);
  }
}

/// Reads until the socket is drained (edge-triggered), delivering each chunk to `data`.
///
/// A short read means the receive queue was empty at that moment; any later arrival raises a new
/// edge, so stopping there is safe and saves a syscall. Except when the peer's FIN (or an error)
/// was already part of this event: it will not be reported again, so read on until it shows.
pub(crate) fn on_readable(env: Env, conn: &Conn, hup: bool) {
  if let Some((h, r)) = read_once(env, conn) {
    read_on(env, conn, hup, h, r);
  }
}

/// One read, if the socket is open for reading: its handler set and what the read gave.
pub(crate) fn read_once(env: Env, conn: &Conn) -> Option<(Rc<Handlers>, Read)> {
  let h = conn.handlers()?;
  let Ok(mut guard) = conn.st.try_borrow_mut() else { return None };
  let st = &mut *guard;
  // A TLS socket here was upgraded by a `data` handler of this read loop: from now on its session
  // reads (what the kernel holds goes through it: `upgradeTLS()` kicks the socket).
  if st.phase != Phase::Open || st.paused || st.read_eof || st.tls.is_some() {
    return None;
  }
  let io = st.io.as_ref()?;
  let r = readbuf::read(env, io, h.binary_type, &mut st.read_size);
  Some((h, r))
}

/// Whether a readiness report for `conn` needs nothing but a read whose chunk goes to `data`
/// (Open, plain, not paused, no drain owed, no FIN or error in the report, and reads that go
/// into the shared slab as `Buffer`s): what `batch` may deliver from its JS loop.
pub(crate) fn plain_read(conn: &Conn, ev: &Ready) -> bool {
  if !ev.is_readable() || ev.is_read_closed() || ev.is_error() {
    return false;
  }
  let Ok(st) = conn.st.try_borrow() else { return false };
  st.phase == Phase::Open
    && st.tls.is_none()
    && !st.paused
    && !st.read_eof
    && !(ev.is_writable() && st.want_drain)
    && st.read_size == readbuf::ReadSize::Small
    && st.handlers.as_ref().and_then(HandlerRef::current).is_some_and(|h| h.binary_type == BinaryType::Buffer)
}

/// The rest of [`on_readable`] after its first read `r`: delivers each chunk and reads on while
/// reads come back full (or `hup`), then handles the end, error or drained socket.
pub(crate) fn read_on(env: Env, conn: &Conn, hup: bool, h: Rc<Handlers>, r: Read) {
  // The first chunk's handles live in the caller's scope; later ones (a full read loops) in one
  // of their own each.
  let mut next = Some((h, r));
  let mut first = true;
  loop {
    let _hs = (!std::mem::take(&mut first)).then(|| HandleScope::open(env));
    let Some((h, r)) = next.take().or_else(|| read_once(env, conn)) else { return };
    match r {
      Read::Data(chunk, full) => {
        if let Some(socket) = conn.socket(env) {
          if let Some(Called::Threw(e)) = readbuf::deliver(env, &h, socket, chunk) {
            route_error(env, &routed(conn, h), socket, e);
          }
        }
        if !full && !hup {
          return;
        }
      }
      Read::Eof => return on_eof(env, conn),
      Read::Failed(e) => {
        crate::debug::debug!("read error: {e}");
        let err = SysError::from_io(&e, "read").to_js(env);
        return close(env, conn, How::Gone, Some(err));
      }
      Read::Stop => return,
    }
  }
}

/// The peer sent FIN (or our own `shutdown(true)` shut the read side).
pub(crate) fn on_eof(env: Env, conn: &Conn) {
  let (write_shut, half_open, reset) = {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return };
    st.read_eof = true;
    (st.write_shut, st.allow_half_open, st.extra().and_then(|x| x.reset))
  };
  if reset.is_some() {
    // Reported as the peer's reset always is (spec §5.1): ECONNRESET, syscall "read". (A send
    // after the reset was consumed gets EPIPE; our own shutdown() never reaches send.)
    let err = SysError::from_io(&io::Error::from_raw_os_error(libc::ECONNRESET), "read").to_js(env);
    return close(env, conn, How::Gone, Some(err));
  }
  // After our own shutdown() the peer's FIN completes the close: Bun reports no `end` then.
  // (Unix-domain sockets get `end` like TCP ones: Bun 1.4.5 does, whatever spec §5.2 says.)
  if write_shut {
    return close(env, conn, How::Graceful, None);
  }
  emit(env, conn, Event::End, &[]);
  if !half_open {
    close(env, conn, How::Graceful, None);
  }
}
