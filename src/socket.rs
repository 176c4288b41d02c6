//! `Socket<Data>`: the JS handle of one connection (spec §4). Every method is a short,
//! synchronous operation on the connection the reactor owns; none of them queues data.
//! The TLS members live in `socket_tls`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use napi::sys;

use crate::bytes::with_bytes;
use crate::class::{self, Class, Ctx, Method};
use crate::conn::{self, Conn, How, Phase};
use crate::conn_parts::AfterHandshake;
use crate::error::{pending, ArgError};
use crate::handlers::{self, HandlerRef};
use crate::js::{self, Value};
use crate::options::js_number;
use crate::reactor;
use crate::socket_addr::{family, local_address, local_port, remote_address, remote_port};
use crate::sockopt;

/// The native side of a JS `Socket`: a handle on the connection.
pub(crate) struct SocketHandle {
  /// Swapped for a closed stand-in when `upgradeTLS()` detaches this handle.
  conn: RefCell<Rc<Conn>>,
  wrap: Cell<sys::napi_ref>,
}

impl SocketHandle {
  pub(crate) fn wrap_ref(&self) -> sys::napi_ref {
    self.wrap.get()
  }

  /// Clears a connection's pointer to its handle (at close) and returns the handle's wrap
  /// reference, still strong, for the caller to release once the close handler has run.
  pub(crate) fn take_ref(slot: &mut *const SocketHandle) -> sys::napi_ref {
    let h = std::mem::replace(slot, std::ptr::null());
    // SAFETY: non-null only while the object is held strongly (see `ConnState::js`).
    if h.is_null() {
      std::ptr::null_mut()
    } else {
      unsafe { (*h).wrap.get() }
    }
  }

  pub(crate) fn conn(&self) -> Rc<Conn> {
    self.conn.borrow().clone()
  }

  /// Points this handle at a closed copy of its connection (the original socket after
  /// `upgradeTLS()`: readyState -1, writes -1), keeping `bytesWritten`.
  pub(crate) fn detach(&self) {
    let old = self.conn();
    let dead = Conn::closed_copy(&old);
    *self.conn.borrow_mut() = dead;
  }
}

thread_local! {
  static CTOR: Cell<sys::napi_ref> = const { Cell::new(std::ptr::null_mut()) };
}

impl Class for SocketHandle {
  const NAME: &'static str = "Socket";
  const KIND: usize = 1;
  const METHODS: &'static [(&'static str, Method<Self>)] = &[
    ("write", write),
    ("end", end),
    ("close", close),
    ("terminate", terminate),
    ("shutdown", shutdown),
    ("flush", flush),
    ("timeout", timeout),
    ("ref", ref_),
    ("unref", unref),
    ("pause", pause),
    ("resume", resume),
    ("reload", reload),
    ("setNoDelay", set_no_delay),
    ("setKeepAlive", set_keep_alive),
  ];
  const MORE_METHODS: &'static [(&'static str, Method<Self>)] = crate::socket_tls::METHODS;
  const GETTERS: &'static [(&'static str, Method<Self>)] = &[
    ("readyState", ready_state),
    ("bytesWritten", bytes_written),
    ("fd", fd),
    ("remoteAddress", remote_address),
    ("remotePort", remote_port),
    ("remoteFamily", family),
    ("localAddress", local_address),
    ("localPort", local_port),
    ("localFamily", family),
    ("listener", listener),
    ("authorized", crate::socket_tls::authorized),
    ("alpnProtocol", crate::socket_tls::alpn_protocol),
  ];
  fn ctor_slot() -> &'static std::thread::LocalKey<Cell<sys::napi_ref>> {
    &CTOR
  }
  fn wrap_cell(&self) -> &Cell<sys::napi_ref> {
    &self.wrap
  }
}

/// Creates the JS object for `conn`; the connection holds its (strong) wrap reference until
/// close.
pub(crate) fn new_js(env: sys::napi_env, conn: &Rc<Conn>, data: Value) -> napi::Result<Value> {
  let (obj, _, handle) = class::instantiate(env, SocketHandle { conn: RefCell::new(conn.clone()), wrap: Cell::new(std::ptr::null_mut()) }, data)?;
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    st.js = handle;
  }
  Ok(obj)
}

/// A second JS handle on `conn` that does not keep the connection's object slot (the `raw`
/// half of `upgradeTLS()`); the connection does not hold it alive.
pub(crate) fn new_js_view(env: sys::napi_env, conn: &Rc<Conn>, data: Value) -> napi::Result<Value> {
  let (obj, wrap, _) = class::instantiate(env, SocketHandle { conn: RefCell::new(conn.clone()), wrap: Cell::new(std::ptr::null_mut()) }, data)?;
  class::release(env, wrap);
  Ok(obj)
}

/// `write(data, byteOffset?, byteLength?)`: sends now, returns the bytes the kernel took, `0`
/// while a `drain` is owed, `-1` once closed or shut down.
fn write(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  match with_bytes(c.env, c.arg(0), c.opt(1), c.opt(2), |b| s.conn().send(b)) {
    Ok(Some(n)) => c.number(n as f64),
    Ok(None) => c.number(if s.conn().is_open() { 0.0 } else { -1.0 }),
    Err(bad) => Err(bad.throw(c.env)),
  }
}

/// `end(data?)`: writes `data`, then closes fully (FIN) even with `allowHalfOpen`; the socket's
/// own `close` handler runs before this returns. The whole chunk is delivered: what the kernel
/// cannot take at once is flushed in the background before the FIN (`linger`). Returns the bytes
/// taken (`0` without data), `-1` if already closed.
fn end(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let sent = with_bytes(c.env, c.arg(0), c.opt(1), c.opt(2), |b| {
    let n = s.conn().send(b);
    if n >= 0 && (n as usize) < b.len() {
      s.conn().keep_unsent(&b[n as usize..]);
      return b.len() as i64;
    }
    n
  });
  let written = match sent {
    Ok(Some(n)) => n,
    Ok(None) => 0,
    Err(bad) => return Err(bad.throw(c.env)),
  };
  if !s.conn().is_open() {
    return c.number(-1.0);
  }
  graceful(c.env, &s.conn());
  c.number(if written < 0 { -1.0 } else { written as f64 })
}

/// Graceful close, like `end()` without data; `close` runs before this returns.
fn close(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  graceful(c.env, &s.conn());
  c.undefined()
}

/// The caller's own graceful close: plain sockets run their `close` handler before returning,
/// TLS sockets right after (spec §5.3).
fn graceful(env: sys::napi_env, conn: &Rc<conn::Conn>) {
  if crate::tls::defer_until_handshake(conn, AfterHandshake::End) {
    return;
  }
  if conn.st.try_borrow().is_ok_and(|st| st.tls.is_some()) {
    conn::close_then_report(conn);
  } else {
    conn::close(env, conn, How::Graceful, None);
  }
}

/// Abortive close: the peer gets a reset (SO_LINGER 0); `close` runs before this returns.
fn terminate(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  conn::close(c.env, &s.conn(), How::Reset, None);
  c.undefined()
}

/// `shutdown()` half-closes the write side (the peer sees `end`; later writes return `-1`);
/// `shutdown(true)` shuts the read side (this socket's own `end` handler runs next).
fn shutdown(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let read_side = js::truthy(c.env, c.arg(0));
  if !read_side && crate::tls::defer_until_handshake(&s.conn(), AfterHandshake::Shutdown) {
    return c.undefined();
  }
  if !read_side && s.conn().st.try_borrow().is_ok_and(|st| st.phase == Phase::Open && st.read_eof) {
    // After the peer's FIN (allowHalfOpen) this ends the connection: both directions are done.
    graceful(c.env, &s.conn());
    return c.undefined();
  }
  if let Ok(mut st) = s.conn().st.try_borrow_mut() {
    if let (Phase::Open, Some(fd)) = (st.phase, st.io.as_ref().map(conn::Io::fd)) {
      if read_side {
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
      } else {
        st.write_shut = true;
        if st.tls.is_some() {
          // close_notify first, and the FIN only once every taken byte is out.
          crate::tls::shutdown_write(&mut st);
        } else {
          // No drain after this: every later write returns -1 (Bun's plain sockets fire none).
          st.want_drain = false;
          unsafe { libc::shutdown(fd, libc::SHUT_WR) };
        }
      }
    }
  }
  c.undefined()
}

/// A no-op: writes are never buffered.
fn flush(_: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  c.undefined()
}

/// `timeout(seconds)`: a one-shot timer (not reset by I/O, does not close); `0` disarms.
fn timeout(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  if c.argc == 0 {
    return Err(ArgError::plain("Expected 1 argument, got 0").throw(c.env));
  }
  // A BigInt counts by its value, and the check follows the truncation (`timeout(-0.5)` is 0),
  // as in Bun.
  let n = match js::bigint_f64(c.env, c.arg(0)) {
    Some(n) => n,
    None => js::to_number(c.env, c.arg(0)).ok_or_else(pending)?,
  };
  let secs = if n.is_nan() { 0.0 } else { n.trunc() };
  if secs < 0.0 {
    return Err(ArgError::plain("Timeout must be a positive integer").throw(c.env));
  }
  // Far-future deadlines (1e10 s) saturate to "never" rather than overflow.
  let at = (secs > 0.0).then(|| Instant::now().checked_add(Duration::from_secs_f64(secs.min(1e12)))).flatten();
  crate::timeout::set(&s.conn(), at);
  c.undefined()
}

fn set_ref(s: &SocketHandle, c: &Ctx, on: bool) -> napi::Result<Value> {
  let changed = match s.conn().st.try_borrow_mut() {
    Ok(mut st) if st.phase == Phase::Open => {
      st.refed = on;
      true
    }
    _ => false,
  };
  if changed {
    s.conn().sync_ref();
  }
  c.undefined()
}

/// Keep the process alive while this socket is open (the default).
fn ref_(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  set_ref(s, c, true)
}

/// Let the process exit even though this socket is open.
fn unref(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  set_ref(s, c, false)
}

/// Stops delivering `data` until `resume()`; unread bytes wait in the kernel.
fn pause(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  if let Ok(mut st) = s.conn().st.try_borrow_mut() {
    st.paused = true;
  }
  c.undefined()
}

/// Resumes `data` delivery, including bytes that arrived while paused.
fn resume(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let token = s.conn().token.get();
  if let Ok(mut st) = s.conn().st.try_borrow_mut() {
    let was_paused = std::mem::replace(&mut st.paused, false);
    if was_paused && st.phase == Phase::Open {
      let tls = st.tls.is_some();
      if let Some(io) = st.io.as_mut() {
        // Edge-triggered: re-registering re-arms the edge so bytes already waiting are reported.
        let _ = reactor::with(|r| r.reregister(io.fd(), token, crate::poller::CONN));
      }
      if tls {
        // Plaintext (or ciphertext) the session already holds has no edge left to announce it.
        let _ = reactor::with(|r| r.kick(token));
      }
    }
  }
  c.undefined()
}

/// `reload({ socket })`: replaces this socket's handlers; the next event uses them.
fn reload(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let arg = c.opt(0);
  if !s.conn().is_open() {
    // Bun: a closed socket ignores reload() without validating, except for a missing argument.
    return match arg {
      None => Err(ArgError::plain("Expected 1 argument").throw(c.env)),
      Some(_) => c.undefined(),
    };
  }
  let h = handlers::from_reload_arg(c.env, arg, ArgError::plain("Expected options object"), "Expected \"socket\" option")?;
  if let Ok(mut st) = s.conn().st.try_borrow_mut() {
    st.handlers = Some(HandlerRef::own(h));
  }
  c.undefined()
}

fn with_fd(s: &SocketHandle, f: impl FnOnce(i32, bool) -> bool) -> bool {
  let conn = s.conn();
  let Ok(st) = conn.st.try_borrow() else { return false };
  match (st.phase, st.io.as_ref()) {
    (Phase::Open, Some(io)) => f(io.fd(), st.is_unix),
    _ => false,
  }
}

/// `setNoDelay(noDelay = true)`: TCP_NODELAY; `true` on a live socket, `false` on a closed one.
fn set_no_delay(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let v = c.arg(0);
  let on = js::is_undefined(c.env, v) || js::truthy(c.env, v);
  c.boolean(with_fd(s, |fd, unix| unix || sockopt::set_nodelay(fd, on)))
}

/// `setKeepAlive(enable = false, initialDelay = 0)`: SO_KEEPALIVE; `true` on a live socket.
fn set_keep_alive(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let on = js::truthy(c.env, c.arg(0));
  let d = c.arg(1);
  let delay_ms = match js::type_of(c.env, d) {
    sys::ValueType::napi_undefined => 0.0,
    sys::ValueType::napi_number => {
      // Bun's checks, in Bun's order: NaN counts as 0; then infinities and integers outside
      // 0..=2^31-1 are out of range (with Bun's message naming the safe-integer bound), and other
      // fractions are not integers.
      let n = js::get_f64(c.env, d).unwrap_or(0.0);
      let range = || {
        let msg = format!("The value of \"initialDelay\" is out of range. It must be >= 0 and <= 9007199254740991. Received {}", js_number(n));
        Err(ArgError::range_error(msg).throw(c.env))
      };
      match n {
        n if n.is_nan() => 0.0,
        n if n.is_infinite() => return range(),
        n if n.fract() != 0.0 => {
          return Err(ArgError::type_error("The \"initialDelay\" property must be of type integer. Received number").throw(c.env));
        }
        n if !(0.0..=f64::from(i32::MAX)).contains(&n) => return range(),
        n => n,
      }
    }
    t => {
      let kind = match t {
        sys::ValueType::napi_string => "string",
        sys::ValueType::napi_boolean => "boolean",
        sys::ValueType::napi_function => "function",
        sys::ValueType::napi_symbol => "symbol",
        sys::ValueType::napi_bigint => "bigint",
        _ => "object",
      };
      let msg = format!("The \"initialDelay\" property must be of type number. Received {kind}");
      return Err(ArgError::type_error(msg).throw(c.env));
    }
  };
  // Unix sockets: Bun's answer, `false` only when a delay of a second or more asks for the TCP
  // idle time, which they do not have.
  c.boolean(with_fd(s, |fd, unix| if unix { !(on && delay_ms >= 1000.0) } else { sockopt::set_keepalive(fd, on, delay_ms) }))
}

/// `1` while open, `-1` once closed (spec §4.1), or ended while its TLS handshake still runs.
fn ready_state(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let ending = s.conn().st.try_borrow().is_ok_and(|st| st.extra().is_some_and(|x| x.after_handshake == Some(AfterHandshake::End)));
  c.number(if s.conn().is_open() && !ending { 1.0 } else { -1.0 })
}

/// Bytes the kernel accepted so far (every `write`/`end` return value summed).
fn bytes_written(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  c.number(s.conn().st.try_borrow().map_or(0.0, |st| st.bytes_written as f64))
}

/// The file descriptor, `-1` once closed.
fn fd(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let fd = s.conn().st.try_borrow().ok().and_then(|st| st.io.as_ref().map(conn::Io::fd)).unwrap_or(-1);
  c.number(f64::from(fd))
}

/// The listener that accepted this socket (`undefined` for clients and once closed).
fn listener(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  let l = s.conn().st.try_borrow().ok().and_then(|st| st.listener.clone());
  Ok(l.and_then(|l| l.js_object(c.env)).unwrap_or_else(|| js::undefined(c.env)))
}
