//! TLS on rustls, sans-IO, driven by the same reactor as plain sockets (spec §6).
//!
//! The fd stays non-blocking and edge-triggered; ciphertext is read here, fed to the rustls
//! session, and the plaintext it yields goes to `data` exactly like plain bytes. `write()` hands
//! plaintext to the session (bounded by a 64 KiB buffer limit, so the return value keeps Bun's
//! "bytes taken" meaning: what was taken will be delivered) and flushes ciphertext to the fd.
//!
//! Handler order (spec §2.4, §6.3): with a `handshake` handler, `open` runs at TCP connect and
//! `handshake(socket, success, authorizationError)` when the handshake ends; without one, `open`
//! runs after a successful handshake. Writes made before the handshake are buffered by the
//! session and sent right after it (Bun loses them; bunnet does not).

pub(crate) mod cert;
pub(crate) mod config;
mod errors;
mod keys;
mod outcome;
mod read;
pub(crate) mod session;
pub(crate) mod verify;
mod watch;

use std::io::{self, Write as _};

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::Connection;

use crate::conn::{self, Conn, Io};
use crate::handlers::Event;
use crate::js::Env;
use config::TlsOptions;
pub(crate) use outcome::{defer_until_handshake, handshake_or_fatal, mark_opened};
use outcome::handshake_done;
pub(crate) use read::on_resume;
pub(crate) use errors::verify_error_js;
use verify::VerifyError;

/// Plaintext the session may hold before `write()` starts returning less than asked.
const BUFFER_LIMIT: usize = 64 * 1024;

pub(crate) struct TlsState {
  pub conn: Connection,
  /// A failed verification of the peer's certificate, as Node names it.
  recorded: Option<VerifyError>,
  /// Ciphertext read but not yet taken by the session (its plaintext buffer was full).
  inbuf: Vec<u8>,
  /// How much of `inbuf` the session has taken already.
  inbuf_off: usize,
  /// A TLS error met while filling a `data` chunk, reported once the chunk is delivered.
  failed: Option<rustls::Error>,
  pub server: bool,
  /// The handshake has ended (either way) and been reported.
  pub done: bool,
  /// `open` has run.
  pub opened: bool,
  request_cert: bool,
  pub servername: Option<String>,
  /// This side's own certificate (DER), for `getCertificate()`.
  pub own_cert: Option<Vec<u8>>,
  /// Client: its window on session storage (`getSession`).
  pub sessions: Option<session::Slot>,
  pub authorized: bool,
  pub auth_error: Option<VerifyError>,
  /// Reads Finished messages and tickets off the wire while the handshake runs.
  watch: Option<Box<watch::Watch>>,
  /// TLS 1.2 Finished messages (verify_data): this side's, the peer's.
  pub finished: Option<Vec<u8>>,
  pub peer_finished: Option<Vec<u8>>,
  /// Client: the server's latest session ticket.
  pub ticket: Option<Vec<u8>>,
  /// After `upgradeTLS()`: the original handlers, still fed through the `raw` socket.
  pub tap: Option<Box<Tap>>,
  /// `setMaxSendFragment(n)`: plaintext goes to the session in pieces of at most `n` bytes.
  pub max_fragment: Option<usize>,
  /// `shutdown()` was called with ciphertext still queued: the FIN follows the last of it.
  fin_after_flush: bool,
}

/// What `upgradeTLS()` leaves the original handlers (spec §6.5): `data` with the ciphertext as
/// read, and `close`, both with the `raw` socket (held strongly until the close).
pub(crate) struct Tap {
  pub handlers: crate::handlers::HandlerRef,
  pub raw: napi::sys::napi_ref,
}

impl TlsState {
  /// `process_new_packets` with this connection's session slot and verdict in place.
  fn process(&mut self) -> Result<(), rustls::Error> {
    let (conn, sessions) = (&mut self.conn, self.sessions);
    let r = watch::capturing(&mut self.watch, || session::with_slot(sessions, || conn.process_new_packets().map(|_| ())));
    if let Some(v) = verify::take_verdict() {
      self.recorded = Some(v);
    }
    if let Some(w) = self.watch.as_mut() {
      w.pump();
      self.harvest();
    }
    r
  }

  /// Takes what the watch learnt; drops it once there is nothing more to learn.
  fn harvest(&mut self) {
    let Some(w) = self.watch.as_mut() else { return };
    if let Some(f) = w.finished.take() {
      self.finished = Some(f);
    }
    if let Some(f) = w.peer_finished.take() {
      self.peer_finished = Some(f);
    }
    if let Some(t) = w.ticket.take() {
      self.ticket = Some(t);
    }
    if w.done() {
      self.watch = None;
    }
  }
}

/// A client TLS start put off until `open` has run (there is a `handshake` handler), so that
/// `setSession()`/`setServername()` in `open` shape the ClientHello; writes made meanwhile wait
/// here and go out encrypted right after it.
pub(crate) struct PendingClient {
  pub opts: Box<TlsOptions>,
  pub host: String,
  pub early: Vec<u8>,
  pub session: Option<Vec<u8>>,
  pub servername: Option<String>,
}

/// Starts a client TLS session put off by `PendingClient`.
pub(crate) fn start_pending(c: &Conn) -> Result<(), String> {
  let Some(p) = c.st.try_borrow_mut().ok().and_then(|mut st| st.extra.as_mut().and_then(|x| x.pending_tls.take())) else { return Ok(()) };
  let mut opts = p.opts;
  if p.servername.is_some() {
    opts.server_name = p.servername;
  }
  start_client(c, &opts, &p.host, p.session.as_deref())?;
  if !p.early.is_empty() {
    if let Ok(mut st) = c.st.try_borrow_mut() {
      if let Some(t) = st.tls.as_mut() {
        if p.early.len() > BUFFER_LIMIT {
          // `end(data)` in `open` took more than the limit (`Conn::keep_unsent`): all of it goes.
          t.conn.set_buffer_limit(None);
        }
        let _ = t.conn.writer().write_all(&p.early);
      }
      flush_state(&mut st);
    }
  }
  Ok(())
}

/// `write()` while a client TLS start is pending: kept (up to the session's buffer limit) and
/// sent after the ClientHello.
pub(crate) fn send_pending(st: &mut conn::ConnState, bytes: &[u8]) -> i64 {
  let Some(p) = st.pending_tls() else { return -1 };
  let n = bytes.len().min(BUFFER_LIMIT.saturating_sub(p.early.len()));
  p.early.extend_from_slice(&bytes[..n]);
  st.bytes_written += n as u64;
  if n < bytes.len() {
    st.want_drain = true;
  }
  n as i64
}

/// Starts the client side of TLS on a connected socket (writes the ClientHello), offering the
/// session named by `session` if there is one.
pub(crate) fn start_client(conn: &Conn, opts: &TlsOptions, host: &str, session: Option<&[u8]>) -> Result<(), String> {
  let sessions = session::Slot::new(session);
  let cfg = config::client(opts)?;
  let bare = host.trim_start_matches('[').trim_end_matches(']');
  let name_str = opts.server_name.clone().unwrap_or_else(|| bare.to_string());
  let name = match name_str.parse::<IpAddr>() {
    Ok(ip) => ServerName::IpAddress(ip.into()),
    Err(_) => ServerName::try_from(name_str.clone()).map_err(|e| e.to_string())?,
  };
  let mut c = session::with_slot(Some(sessions), || rustls::ClientConnection::new(cfg, name)).map_err(|e| e.to_string())?;
  c.set_buffer_limit(Some(BUFFER_LIMIT));
  let own = opts.key.as_ref().and_then(|_| opts.chain.first()).map(|c| c.as_ref().to_vec());
  install(conn, Connection::Client(c), false, false, Some(name_str), own, Some(sessions));
  Ok(())
}

/// Starts the server side of TLS on an accepted socket.
pub(crate) fn start_server(conn: &Conn, opts: &TlsOptions, shared: &Arc<rustls::ServerConfig>) -> Result<(), String> {
  let mut c = rustls::ServerConnection::new(shared.clone()).map_err(|e| e.to_string())?;
  c.set_buffer_limit(Some(BUFFER_LIMIT));
  let own = opts.chain.first().map(|c| c.as_ref().to_vec());
  install(conn, Connection::Server(c), true, opts.request_cert, None, own, None);
  Ok(())
}

#[allow(clippy::too_many_arguments)]
fn install(
  conn: &Conn,
  c: Connection,
  server: bool,
  request_cert: bool,
  servername: Option<String>,
  own_cert: Option<Vec<u8>>,
  sessions: Option<session::Slot>,
) {
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    st.tls = Some(Box::new(TlsState {
      conn: c,
      recorded: None,
      inbuf: Vec::new(),
      inbuf_off: 0,
      failed: None,
      server,
      done: false,
      opened: false,
      request_cert,
      servername,
      own_cert,
      sessions,
      authorized: false,
      auth_error: None,
      watch: Some(watch::Watch::new(server)),
      finished: None,
      peer_finished: None,
      ticket: None,
      tap: None,
      max_fragment: None,
      fin_after_flush: false,
    }));
    flush_state(&mut st);
  }
}

/// Writes pending ciphertext to the fd; `true` when nothing is left pending.
pub(super) fn flush_state(st: &mut conn::ConnState) -> bool {
  let Some(fd) = st.io.as_ref().map(Io::fd) else { return true };
  let Some(t) = st.tls.as_mut() else { return true };
  let t = &mut **t;
  let mut w = FdWriter(fd, t.watch.as_deref_mut());
  while t.conn.wants_write() {
    match t.conn.write_tls(&mut w) {
      Ok(_) => {}
      Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
      Err(e) => {
        if let Some(errno @ (libc::ECONNRESET | libc::EPIPE)) = e.raw_os_error() {
          st.extra_mut().reset.get_or_insert(errno);
        }
        return false;
      }
    }
  }
  t.harvest();
  true
}

/// Writes ciphertext to the fd, showing what was sent to the watch (while there is one).
struct FdWriter<'a>(i32, Option<&'a mut watch::Watch>);

impl FdWriter<'_> {
  fn sent(&mut self, bufs: &[io::IoSlice<'_>], mut n: usize) {
    let Some(w) = self.1.as_mut() else { return };
    for b in bufs {
      let k = n.min(b.len());
      w.sent(&b[..k]);
      n -= k;
      if n == 0 {
        break;
      }
    }
  }
}

impl io::Write for FdWriter<'_> {
  /// rustls hands over one buffer per TLS record: one `sendmsg` sends them all (MSG_NOSIGNAL,
  /// unlike `writev`).
  fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: IoSlice is ABI-compatible with iovec; msghdr is plain data, zeroed then filled.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len().min(64);
    let n = unsafe { libc::sendmsg(self.0, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 {
      Err(io::Error::last_os_error())
    } else {
      self.sent(bufs, n as usize);
      Ok(n as usize)
    }
  }

  fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
    let n = crate::fdio::send(self.0, buf)?;
    self.sent(&[io::IoSlice::new(buf)], n);
    Ok(n)
  }
  fn flush(&mut self) -> io::Result<()> {
    Ok(())
  }
}

/// `write()` on a TLS socket: plaintext taken by the session (flushed as ciphertext now or on
/// the next writable edge).
pub(crate) fn send(st: &mut conn::ConnState, bytes: &[u8]) -> i64 {
  let Some(t) = st.tls.as_mut() else { return -1 };
  let piece = t.max_fragment.unwrap_or(bytes.len()).max(1);
  let mut n = 0;
  // Each write to the session becomes its own record(s): pieces keep records within
  // `setMaxSendFragment`.
  for chunk in bytes.chunks(piece) {
    match t.conn.writer().write(chunk) {
      Ok(k) => {
        n += k;
        if k < chunk.len() {
          break;
        }
      }
      Err(_) if n == 0 => return -1,
      Err(_) => break,
    }
  }
  flush_state(st);
  if st.extra().is_some_and(|x| x.reset.is_some()) {
    // The peer reset the connection: what the session took will never be delivered.
    return -1;
  }
  st.bytes_written += n as u64;
  if n < bytes.len() {
    st.want_drain = true;
  }
  n as i64
}

/// `shutdown()` (write side) on a TLS socket: close_notify, then the FIN once the session's
/// queued ciphertext (bytes `write()` already took) has reached the kernel.
pub(crate) fn shutdown_write(st: &mut conn::ConnState) {
  if let Some(t) = st.tls.as_mut() {
    t.conn.send_close_notify();
  }
  if flush_state(st) {
    fin(st);
  } else if let Some(t) = st.tls.as_mut() {
    t.fin_after_flush = true;
  }
}

fn fin(st: &conn::ConnState) {
  if let Some(fd) = st.io.as_ref().map(Io::fd) {
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
  }
}

/// Before a graceful close: close_notify, and whatever ciphertext the kernel does not take now
/// is handed to the background flush (`linger`).
pub(crate) fn on_close(st: &mut conn::ConnState) {
  if let Some(t) = st.tls.as_mut() {
    t.conn.send_close_notify();
  }
  flush_state(st);
  if let Some(t) = st.tls.as_mut() {
    let mut rest = Vec::new();
    while t.conn.wants_write() {
      if t.conn.write_tls(&mut rest).is_err() {
        break;
      }
    }
    if !rest.is_empty() {
      st.extra_mut().unsent = Some(rest);
    }
  }
}

/// Readiness on an open TLS socket.
pub(crate) fn on_event(env: Env, c: &Conn, writable: bool, readable: bool, hup: bool) {
  if writable {
    let drain = match c.st.try_borrow_mut() {
      Ok(mut st) => {
        let flushed = flush_state(&mut st);
        if flushed && st.tls.as_mut().is_some_and(|t| std::mem::take(&mut t.fin_after_flush)) {
          fin(&st);
        }
        let done = st.tls.as_ref().is_some_and(|t| t.done);
        if flushed && done && st.want_drain {
          st.want_drain = false;
          true
        } else {
          false
        }
      }
      Err(_) => false,
    };
    if drain {
      conn::emit(env, c, Event::Drain, &[]);
    }
  }
  if readable || hup {
    read::on_readable(env, c, hup);
  }
}
