//! `Socket<Data>`: the JS handle of one connection (spec §4). Every method is a short,
//! synchronous operation on the connection the reactor owns; none of them queues data.

use std::rc::Rc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::bytes::with_bytes;
use crate::conn::{self, Conn, How, Phase};
use crate::error::{pending, ArgError};
use crate::handlers::{self, HandlerSlot};
use crate::reactor;
use crate::js::{self, Raw};
use crate::sockopt;

/// A TCP or unix-domain connection made by `connect()` or accepted by a listener.
///
/// Writes are unbuffered: `write()` returns how many bytes the kernel took, and `drain` fires
/// once the socket can take more after a short write.
#[napi]
pub struct Socket {
  pub(crate) conn: Rc<Conn>,
}

/// Creates the JS object for `conn` and stores a strong reference to it in the connection.
pub(crate) fn new_js(env: sys::napi_env, conn: &Rc<Conn>, data: sys::napi_value) -> napi::Result<sys::napi_value> {
  let napi_env = napi::Env::from_raw(env);
  let instance = Socket { conn: conn.clone() }.into_instance(&napi_env)?;
  let obj = instance.value;
  js::set(env, obj, "data", data).map_err(|_| pending())?;
  let r = js::reference(env, obj).map_err(|_| napi::Error::from_reason("napi_create_reference failed"))?;
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    st.js = r;
  }
  Ok(obj)
}

#[napi]
impl Socket {
  /// Sends `data` (string as UTF-8, or any binary view), optionally the slice
  /// `[byteOffset, byteOffset + byteLength)` of it. Returns the bytes the kernel accepted
  /// (`0..length`), `0` while a `drain` is owed, and `-1` once the socket is closed or shut down.
  #[napi]
  pub fn write(&self, env: Env, data: Unknown, byte_offset: Unknown, byte_length: Unknown) -> Result<f64> {
    let e = env.raw();
    match with_bytes(e, data.value().value, byte_offset.value().value, byte_length.value().value, |b| {
      self.conn.send(b)
    }) {
      Ok(Some(n)) => Ok(n as f64),
      Ok(None) => Ok(if self.conn.is_open() { 0.0 } else { -1.0 }),
      Err(bad) => Err(bad.throw(e)),
    }
  }

  /// Writes `data` (if given), then closes the connection fully (FIN), even with
  /// `allowHalfOpen`. The socket's own `close` handler runs before this returns. The whole chunk
  /// is delivered: what the kernel cannot take at once is flushed in the background before the
  /// FIN. Returns the bytes taken (`0` without data), `-1` if the socket was already closed.
  #[napi]
  pub fn end(&self, env: Env, data: Unknown, byte_offset: Unknown, byte_length: Unknown) -> Result<f64> {
    let e = env.raw();
    let sent = with_bytes(e, data.value().value, byte_offset.value().value, byte_length.value().value, |b| {
      let n = self.conn.send(b);
      if n >= 0 && (n as usize) < b.len() {
        self.conn.keep_unsent(&b[n as usize..]);
        return b.len() as i64;
      }
      n
    });
    let written = match sent {
      Ok(Some(n)) => n,
      Ok(None) => 0,
      Err(bad) => return Err(bad.throw(e)),
    };
    if !self.conn.is_open() {
      return Ok(-1.0);
    }
    conn::close(e, &self.conn, How::Graceful, None);
    Ok(if written < 0 { -1.0 } else { written as f64 })
  }

  /// Graceful close, like `end()` without data. Runs the `close` handler before returning.
  #[napi]
  pub fn close(&self, env: Env) {
    conn::close(env.raw(), &self.conn, How::Graceful, None);
  }

  /// Abortive close: the peer gets a reset (SO_LINGER 0). Runs the `close` handler before
  /// returning.
  #[napi]
  pub fn terminate(&self, env: Env) {
    conn::close(env.raw(), &self.conn, How::Reset, None);
  }

  /// `shutdown()` half-closes the write side (the peer sees `end`; later writes return `-1`);
  /// `shutdown(true)` shuts the read side (this socket's own `end` handler runs next).
  #[napi]
  pub fn shutdown(&self, env: Env, half_close: Unknown) {
    let read_side = js::truthy(env.raw(), half_close.value().value);
    let Ok(mut st) = self.conn.st.try_borrow_mut() else { return };
    if st.phase != Phase::Open {
      return;
    }
    let Some(fd) = st.io.as_ref().map(conn::Io::fd) else { return };
    if read_side {
      unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    } else {
      st.write_shut = true;
      unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    }
  }

  /// A no-op: writes are never buffered, so there is nothing to flush.
  #[napi]
  pub fn flush(&self) {}

  /// Arms a one-shot timer: the `timeout` handler runs once `seconds` have passed (not reset by
  /// I/O; the socket is not closed). `0` disarms; calling again re-arms.
  #[napi]
  pub fn timeout(&self, env: Env, seconds: Unknown) -> Result<()> {
    let e = env.raw();
    let v = seconds.value().value;
    if js::is_undefined(e, v) {
      return Err(ArgError::plain("Expected 1 argument, got 0").throw(e));
    }
    let n = js::to_number(e, v).ok_or_else(pending)?;
    if n < 0.0 {
      return Err(ArgError::plain("Timeout must be a positive integer").throw(e));
    }
    let secs = if n.is_nan() { 0.0 } else { n.trunc() };
    let at = if secs == 0.0 {
      None
    } else {
      // Far-future deadlines (1e10 s) saturate to "never" rather than overflow.
      Instant::now().checked_add(Duration::from_secs_f64(secs.min(1e12)))
    };
    conn::set_timeout(&self.conn, at);
    Ok(())
  }

  /// Keep the process alive while this socket is open (the default).
  #[napi(js_name = "ref")]
  pub fn ref_(&self) {
    self.set_ref(true);
  }

  /// Let the process exit even though this socket is open.
  #[napi]
  pub fn unref(&self) {
    self.set_ref(false);
  }

  fn set_ref(&self, on: bool) {
    match self.conn.st.try_borrow_mut() {
      Ok(mut st) if st.phase == Phase::Open => st.refed = on,
      _ => return,
    }
    self.conn.sync_ref();
  }

  /// Stops delivering `data` until `resume()`; unread bytes wait in the kernel.
  #[napi]
  pub fn pause(&self) {
    if let Ok(mut st) = self.conn.st.try_borrow_mut() {
      st.paused = true;
    }
  }

  /// Resumes `data` delivery, including bytes that arrived while paused.
  #[napi]
  pub fn resume(&self) {
    let Ok(mut st) = self.conn.st.try_borrow_mut() else { return };
    if !st.paused || st.phase != Phase::Open {
      st.paused = false;
      return;
    }
    st.paused = false;
    let token = self.conn.token.get();
    if let Some(io) = st.io.as_mut() {
      // Edge-triggered: re-registering re-arms the edge so bytes already waiting are reported.
      let _ = reactor::with(|r| {
        r.poll.registry().reregister(io.source(), token, mio::Interest::READABLE | mio::Interest::WRITABLE)
      });
    }
  }

  /// Replaces this socket's handlers (`{ socket: handlers }`); the next event uses them.
  #[napi]
  pub fn reload(&self, env: Env, options: Unknown) -> Result<()> {
    let e = env.raw();
    let arg = options.value().value;
    let arg = (!js::is_undefined(e, arg)).then_some(arg);
    if !self.conn.is_open() {
      // Bun: a closed socket ignores reload() without validating, except for a missing argument.
      return if arg.is_none() { Err(ArgError::plain("Expected 1 argument").throw(e)) } else { Ok(()) };
    }
    let h = handlers::from_reload_arg(e, arg, "Expected \"socket\" option")?;
    let slot: HandlerSlot = Rc::new(std::cell::RefCell::new(Rc::new(h)));
    if let Ok(mut st) = self.conn.st.try_borrow_mut() {
      st.handlers = Some(slot);
    }
    Ok(())
  }

  /// TCP_NODELAY on (default) or off. `true` on a live socket, `false` on a closed one.
  #[napi]
  pub fn set_no_delay(&self, env: Env, no_delay: Unknown) -> bool {
    let e = env.raw();
    let v = no_delay.value().value;
    let on = js::is_undefined(e, v) || js::truthy(e, v);
    self.with_fd(|fd, unix| unix || sockopt::set_nodelay(fd, on))
  }

  /// SO_KEEPALIVE with the first probe after `initialDelay` ms. `true` on a live socket.
  #[napi]
  pub fn set_keep_alive(&self, env: Env, enable: Unknown, initial_delay: Unknown) -> Result<bool> {
    let e = env.raw();
    let on = js::truthy(e, enable.value().value);
    let d = initial_delay.value().value;
    let delay_ms = if js::is_undefined(e, d) {
      0.0
    } else if js::type_of(e, d) != sys::ValueType::napi_number {
      let kind = match js::type_of(e, d) {
        sys::ValueType::napi_string => "string",
        sys::ValueType::napi_boolean => "boolean",
        sys::ValueType::napi_null => "object",
        sys::ValueType::napi_function => "function",
        sys::ValueType::napi_symbol => "symbol",
        sys::ValueType::napi_bigint => "bigint",
        _ => "object",
      };
      return Err(
        ArgError::type_error(format!("The \"initialDelay\" property must be of type number. Received {kind}")).throw(e),
      );
    } else {
      let n = js::get_f64(e, d).unwrap_or(0.0);
      if n < 0.0 || n.is_nan() {
        return Err(
          ArgError::range_error(format!(
            "The value of \"initialDelay\" is out of range. It must be >= 0 and <= 9007199254740991. Received {}",
            crate::options::js_number(n)
          ))
          .throw(e),
        );
      }
      n
    };
    Ok(self.with_fd(|fd, unix| unix || sockopt::set_keepalive(fd, on, delay_ms)))
  }

  fn with_fd(&self, f: impl FnOnce(i32, bool) -> bool) -> bool {
    let Ok(st) = self.conn.st.try_borrow() else { return false };
    match (st.phase, st.io.as_ref()) {
      (Phase::Open, Some(io)) => f(io.fd(), st.is_unix),
      _ => false,
    }
  }

  /// `1` while open, `-1` once closed (spec §4.1).
  #[napi(getter)]
  pub fn ready_state(&self) -> i32 {
    if self.conn.is_open() {
      1
    } else {
      -1
    }
  }

  /// Bytes the kernel accepted so far (every `write`/`end` return value summed).
  #[napi(getter)]
  pub fn bytes_written(&self) -> f64 {
    self.conn.st.try_borrow().map_or(0.0, |st| st.bytes_written as f64)
  }

  /// The file descriptor, `-1` once closed.
  #[napi(getter)]
  pub fn fd(&self) -> i32 {
    self.conn.st.try_borrow().ok().and_then(|st| st.io.as_ref().map(conn::Io::fd)).unwrap_or(-1)
  }

  #[napi(getter)]
  pub fn remote_address(&self) -> Either<String, ()> {
    self.live_addr(false).map_or(Either::B(()), |a| Either::A(a.ip().to_string()))
  }

  #[napi(getter)]
  pub fn remote_port(&self) -> Either<u32, ()> {
    self.live_addr(false).map_or(Either::B(()), |a| Either::A(u32::from(a.port())))
  }

  #[napi(getter)]
  pub fn remote_family(&self) -> Either<&'static str, ()> {
    self.family()
  }

  #[napi(getter)]
  pub fn local_address(&self) -> Either<String, ()> {
    self.live_addr(true).map_or(Either::B(()), |a| Either::A(a.ip().to_string()))
  }

  #[napi(getter)]
  pub fn local_port(&self) -> Either<u32, ()> {
    self.live_addr(true).map_or(Either::B(()), |a| Either::A(u32::from(a.port())))
  }

  #[napi(getter)]
  pub fn local_family(&self) -> Either<&'static str, ()> {
    self.family()
  }

  fn family(&self) -> Either<&'static str, ()> {
    match self.conn.st.try_borrow() {
      Ok(st) if !st.is_unix => Either::A(if st.is_v6 { "IPv6" } else { "IPv4" }),
      _ => Either::B(()),
    }
  }

  fn live_addr(&self, local: bool) -> Option<std::net::SocketAddr> {
    let st = self.conn.st.try_borrow().ok()?;
    if st.phase != Phase::Open || st.is_unix {
      return None;
    }
    if local {
      sockopt::local_addr(st.io.as_ref()?.fd())
    } else {
      st.remote
    }
  }

  /// The listener that accepted this socket (`undefined` for clients and once closed).
  #[napi(getter)]
  pub fn listener(&self, env: Env) -> Raw {
    let e = env.raw();
    let l = self.conn.st.try_borrow().ok().and_then(|st| st.listener.clone());
    Raw(l.and_then(|l| l.js_object(e)).unwrap_or_else(|| js::undefined(e)))
  }

  /// `false` on plain sockets.
  #[napi(getter)]
  pub fn authorized(&self) -> bool {
    false
  }

  /// `false` on plain sockets (no ALPN).
  #[napi(getter)]
  pub fn alpn_protocol(&self) -> bool {
    false
  }
}
