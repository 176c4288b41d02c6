//! `listen()` and `SocketListener<Data>` (spec §3): binding, accepting on the reactor, stop,
//! reload, and the listener's share in process lifetime.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use mio::Token;
use napi::sys;
use napi::Result;

use crate::class::{self, Class, Ctx, Method};
use crate::conn::{self, Conn, How, Io, Phase};
use crate::error::{ArgError, SysError};
use crate::handlers::{self, HandlerSlot};
use crate::js;
use crate::options::{self, Entry as OptEntry, Target, Tls};
use crate::reactor::{self, Entry};
use crate::sockopt;

enum ListenIo {
  Tcp(mio::net::TcpListener),
  Unix(mio::net::UnixListener),
}

impl ListenIo {
  fn fd(&self) -> i32 {
    match self {
      ListenIo::Tcp(l) => l.as_raw_fd(),
      ListenIo::Unix(l) => l.as_raw_fd(),
    }
  }

  fn accept(&self) -> io::Result<(Io, Option<SocketAddr>)> {
    match self {
      ListenIo::Tcp(l) => l.accept().map(|(s, a)| (Io::Tcp(s), Some(a))),
      ListenIo::Unix(l) => l.accept().map(|(s, _)| (Io::Unix(s), None)),
    }
  }
}

struct ListenerState {
  io: Option<ListenIo>,
  handlers: HandlerSlot,
  /// Strong reference to the JS listener while it listens or still has accepted sockets
  /// (`socket.listener` returns it).
  js: sys::napi_ref,
  refed: bool,
  counted: bool,
  allow_half_open: bool,
  /// Accepted sockets not closed yet (found in the reactor's slab by `stop(true)`).
  conns: usize,
  /// The unix path we created, unlinked by `stop()` (never a pre-existing file: bind fails then).
  unlink: Option<String>,
  /// TLS listeners: the options and the configuration shared by connections without `requestCert`.
  tls: Option<(Box<crate::tls::config::TlsOptions>, std::sync::Arc<rustls::ServerConfig>)>,
  /// Whether accepted TCP sockets come with the listener's TCP_NODELAY (Linux copies it; `None`
  /// until the first accepted socket tells): they then need no `setsockopt` of their own.
  nodelay_inherited: Option<bool>,
}

pub(crate) struct ListenerCore {
  token: Cell<Token>,
  st: RefCell<ListenerState>,
  hostname: Option<String>,
  port: Option<u16>,
  unix: Option<String>,
}

impl ListenerCore {
  /// The listening fd, while listening.
  pub(crate) fn fd(&self) -> Option<i32> {
    self.st.try_borrow().ok()?.io.as_ref().map(ListenIo::fd)
  }

  pub(crate) fn js_object(&self, env: sys::napi_env) -> Option<sys::napi_value> {
    let r = self.st.try_borrow().ok()?.js;
    if r.is_null() {
      return None;
    }
    js::deref(env, r).ok()
  }

  /// One accepted socket fewer (it closed).
  pub(crate) fn forget(&self) {
    if let Ok(mut st) = self.st.try_borrow_mut() {
      st.conns = st.conns.saturating_sub(1);
    }
  }

  /// Drops the strong reference once the listener is stopped and has no sockets left.
  pub(crate) fn release_if_done(&self, env: sys::napi_env) {
    let Ok(mut st) = self.st.try_borrow_mut() else { return };
    if st.io.is_none() && st.conns == 0 && !st.js.is_null() {
      class::release(env, std::mem::replace(&mut st.js, std::ptr::null_mut()));
    }
  }

  fn sync_ref(&self) {
    let Ok(mut st) = self.st.try_borrow_mut() else { return };
    let want = st.io.is_some() && st.refed;
    if want != st.counted {
      st.counted = want;
      reactor::with(|r| r.adjust_refs(if want { 1 } else { -1 }));
    }
  }

  /// Closes the listening fd without calling JS (env teardown).
  pub(crate) fn teardown(&self) {
    if let Ok(mut st) = self.st.try_borrow_mut() {
      st.io = None;
      st.js = std::ptr::null_mut();
      st.counted = false;
      if let Some(p) = st.unlink.take() {
        let _ = std::fs::remove_file(p);
      }
    }
  }
}

/// The native side of a JS `SocketListener`.
pub(crate) struct ListenerHandle {
  core: Rc<ListenerCore>,
  wrap: Cell<sys::napi_ref>,
}

thread_local! {
  static CTOR: Cell<sys::napi_ref> = const { Cell::new(std::ptr::null_mut()) };
}

impl Class for ListenerHandle {
  const NAME: &'static str = "SocketListener";
  const KIND: usize = 2;
  const METHODS: &'static [(&'static str, Method<Self>)] = &[("stop", stop), ("ref", ref_), ("unref", unref), ("reload", reload), ("getsockname", getsockname)];
  const GETTERS: &'static [(&'static str, Method<Self>)] = &[("port", port), ("hostname", hostname), ("unix", unix), ("fd", fd)];
  fn ctor_slot() -> &'static std::thread::LocalKey<Cell<sys::napi_ref>> {
    &CTOR
  }
  fn wrap_cell(&self) -> &Cell<sys::napi_ref> {
    &self.wrap
  }
}

pub(crate) fn listen(env: sys::napi_env, options: Option<sys::napi_value>) -> Result<sys::napi_value> {
  let cfg = options::parse(env, options, OptEntry::Listen).map_err(|e| e.throw(env))?;
  let tls = match cfg.tls {
    Tls::On(opts) => {
      let shared =
        crate::tls::config::server(&opts).map_err(|e| ArgError::plain(format!("TLS configuration failed: {e}")).with_code("ERR_TLS_CONFIG").throw(env))?;
      Some((opts, shared))
    }
    Tls::Off => None,
  };
  reactor::ensure(env)?;
  let (io, hostname, port, unix) = bind(&cfg.target, cfg.exclusive, cfg.reuse_port, cfg.ipv6_only).map_err(|e| e.throw(env))?;
  let unlink = unix.clone().filter(|p| !p.starts_with('\0'));
  let core = Rc::new(ListenerCore {
    token: Cell::new(Token(usize::MAX)),
    st: RefCell::new(ListenerState {
      io: Some(io),
      handlers: Rc::new(RefCell::new(cfg.handlers)),
      js: std::ptr::null_mut(),
      refed: true,
      counted: false,
      allow_half_open: cfg.allow_half_open,
      conns: 0,
      unlink,
      tls,
      nodelay_inherited: None,
    }),
    hostname,
    port,
    unix,
  });
  let (obj, r, _) = class::instantiate(env, ListenerHandle { core: core.clone(), wrap: Cell::new(std::ptr::null_mut()) }, cfg.data)?;
  let registered = reactor::with(|re| {
    let token = re.insert(Entry::Listener(core.clone()));
    core.token.set(token);
    let mut st = core.st.borrow_mut();
    st.js = r;
    match st.io.as_mut() {
      Some(io) => re.register(io.fd(), token, crate::poller::READ),
      None => Ok(()),
    }
  });
  if let Some(Err(e)) | Some(Ok(Err(e))) = registered.map(Ok::<_, io::Error>) {
    return Err(napi::Error::from_reason(format!("registering the listener failed: {e}")));
  }
  core.sync_ref();
  crate::debug::debug!(
    "listen: {}",
    match (&core.unix, &core.hostname, core.port) {
      (Some(u), _, _) => format!("unix {u:?}"),
      (None, Some(h), Some(p)) => format!("{h} port {p}"),
      _ => String::new(),
    }
  );
  Ok(obj)
}

type Bound = (ListenIo, Option<String>, Option<u16>, Option<String>);

fn bind(target: &Target, exclusive: bool, reuse_port: bool, ipv6_only: bool) -> std::result::Result<Bound, SysError> {
  match target {
    Target::Unix(path) => {
      let l = sockopt::bind_unix(path).map_err(|e| SysError::listen(&e, path, None))?;
      Ok((ListenIo::Unix(l), None, None, Some(path.clone())))
    }
    Target::Tcp { host, port } => {
      let addr = resolve_listen(host, *port)?;
      let l = sockopt::bind_tcp(addr, exclusive, reuse_port, ipv6_only).map_err(|e| SysError::listen(&e, host, Some(*port)))?;
      let bound = l.local_addr().map(|a| a.port()).unwrap_or(*port);
      Ok((ListenIo::Tcp(l), Some(host.clone()), Some(bound), None))
    }
  }
}

/// `listen` resolves synchronously (it returns a bound listener): IP literals directly, names
/// through getaddrinfo. Brackets are not accepted here (Bun: ENOTFOUND), unlike `connect`.
fn resolve_listen(host: &str, port: u16) -> std::result::Result<SocketAddr, SysError> {
  if let Ok(ip) = host.parse::<std::net::IpAddr>() {
    return Ok(SocketAddr::new(ip, port));
  }
  if host.starts_with('[') {
    return Err(SysError::not_found(host));
  }
  use std::net::ToSocketAddrs;
  (host, port).to_socket_addrs().ok().and_then(|mut it| it.next()).ok_or_else(|| SysError::not_found(host))
}

/// Accepts every pending connection (edge-triggered) and runs `open` for each.
pub(crate) fn on_readable(env: sys::napi_env, core: &Rc<ListenerCore>) {
  loop {
    let _hs = js::HandleScope::open(env);
    let accepted = {
      let Ok(st) = core.st.try_borrow() else { return };
      let Some(io) = st.io.as_ref() else { return };
      match io.accept() {
        Ok(a) => a,
        Err(e) if e.kind() == io::ErrorKind::Interrupted || e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
        Err(_) => return,
      }
    };
    adopt(env, core, accepted);
  }
}

fn adopt(env: sys::napi_env, core: &Rc<ListenerCore>, (io, remote): (Io, Option<SocketAddr>)) {
  let (slot, half_open, is_unix) = {
    let Ok(mut st) = core.st.try_borrow_mut() else { return };
    let is_unix = matches!(io, Io::Unix(_));
    // TCP_NODELAY is on for every socket (spec). The listener has it too, and where accepted
    // sockets inherit it (Linux) the first one shows it, sparing a system call per connection.
    if !is_unix && !*st.nodelay_inherited.get_or_insert_with(|| sockopt::nodelay(io.fd())) {
      sockopt::set_nodelay(io.fd(), true);
    }
    (st.handlers.clone(), st.allow_half_open, is_unix)
  };
  crate::debug::debug!("accept: fd {} from {}", io.fd(), remote.map_or_else(|| "unix peer".to_string(), |a| a.to_string()));
  let conn = Conn::new(handlers::HandlerRef::shared(slot), half_open, is_unix);
  let registered = reactor::with(|r| {
    let token = r.insert(Entry::Conn(conn.clone()));
    conn.token.set(token);
    r.register(io.fd(), token, crate::poller::CONN)
  });
  let Some(Ok(())) = registered else {
    reactor::with(|r| r.remove(conn.token.get()));
    return;
  };
  {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return };
    st.set_remote(remote);
    st.io = Some(io);
    st.phase = Phase::Open;
    st.listener = Some(core.clone());
  }
  if let Ok(mut st) = core.st.try_borrow_mut() {
    st.conns += 1;
  }
  conn.sync_ref();
  let data = core.js_object(env).and_then(|l| js::get(env, l, "data").ok()).unwrap_or_else(|| js::undefined(env));
  if crate::socket::new_js(env, &conn, data).is_err() {
    conn::close(env, &conn, How::Reset, None);
    return;
  }
  let tls = core.st.try_borrow().ok().and_then(|st| st.tls.clone());
  match tls {
    None => conn::emit_open(env, &conn),
    Some((opts, shared)) => {
      if crate::tls::start_server(&conn, &opts, &shared).is_err() {
        return conn::close(env, &conn, How::Reset, None);
      }
      // With a handshake handler, open runs at accept (authorized false); else after the handshake.
      if conn.handlers().is_some_and(|h| h.has(crate::handlers::Event::Handshake)) {
        crate::tls::mark_opened(&conn);
        conn::emit_open(env, &conn);
      }
    }
  }
}

/// `stop(closeActiveConnections = false)`: stops accepting; with `true` (the boolean only) also
/// closes every accepted socket, whose `close` handlers run before this returns. A unix socket
/// file created by `listen` is removed. Idempotent.
fn stop(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  let v = c.arg(0);
  let close_all = js::type_of(c.env, v) == sys::ValueType::napi_boolean && js::get_bool(c.env, v) == Some(true);
  let core = &l.core;
  crate::debug::debug!("listener stop (closeActiveConnections: {close_all})");
  let (conns, was_listening) = {
    let Ok(mut st) = core.st.try_borrow_mut() else { return c.undefined() };
    let was = st.io.is_some();
    if let Some(io) = st.io.take() {
      let token = core.token.get();
      let _ = reactor::with(|r| r.deregister(io.fd(), token));
    }
    if let Some(p) = st.unlink.take() {
      let _ = std::fs::remove_file(p);
    }
    (close_all && st.conns > 0, was)
  };
  if was_listening {
    let token = core.token.get();
    reactor::with(|r| r.remove(token));
    core.sync_ref();
    // A stopped listener's `data` reads `undefined` (Bun 1.4.5; a later assignment still sticks).
    if js::has_own(c.env, c.this, "data") {
      let _ = js::set(c.env, c.this, "data", js::undefined(c.env));
    }
  }
  if conns {
    for conn in reactor::with(|r| r.conns_of(core)).unwrap_or_default() {
      if conn.st.try_borrow().is_ok_and(|st| st.phase == conn::Phase::Open && st.tls_handshaking()) {
        // A TLS socket still in its handshake ends as a failed handshake, as in Bun: `open`
        // (no handshake handler) or `handshake(false, ECONNRESET)`, then `close`.
        crate::tls::handshake_or_fatal(c.env, &conn, Ok(()));
      } else {
        conn::close(c.env, &conn, How::Graceful, None);
      }
    }
  }
  core.release_if_done(c.env);
  c.undefined()
}

fn set_ref(l: &ListenerHandle, c: &Ctx, on: bool) -> Result<sys::napi_value> {
  if let Ok(mut st) = l.core.st.try_borrow_mut() {
    st.refed = on;
  }
  l.core.sync_ref();
  c.undefined()
}

/// Keep the process alive while listening (the default).
fn ref_(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  set_ref(l, c, true)
}

/// Let the process exit while listening (accepted sockets still count on their own).
fn unref(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  set_ref(l, c, false)
}

/// `reload({ socket })`: replaces the handlers of this listener and of every socket it accepted.
fn reload(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  let done = l.core.st.try_borrow().map_or(true, |st| st.io.is_none() && st.conns == 0);
  let arg = c.opt(0);
  if done || arg.is_none() {
    // Bun's (misleading) message once nothing is left to reload, kept for compatibility.
    return Err(ArgError::plain("Expected 1 argument").throw(c.env));
  }
  let not_object = ArgError::type_error("Expected options object").with_code("ERR_INVALID_ARG_TYPE");
  let h = handlers::from_reload_arg(c.env, arg, not_object, "Expected \"socket\" object")?;
  if let Ok(st) = l.core.st.try_borrow() {
    if let Ok(mut cell) = st.handlers.try_borrow_mut() {
      *cell = h;
    }
  }
  c.undefined()
}

/// The bound port (TCP), kept after `stop()`.
fn port(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  l.core.port.map_or_else(|| c.undefined(), |p| c.number(f64::from(p)))
}

/// The `hostname` option as given (TCP).
fn hostname(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  l.core.hostname.as_deref().map_or_else(|| c.undefined(), |h| c.string(h))
}

/// The socket path (unix).
fn unix(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  l.core.unix.as_deref().map_or_else(|| c.undefined(), |u| c.string(u))
}

/// The listening file descriptor, `-1` once stopped.
fn fd(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  let fd = l.core.st.try_borrow().ok().and_then(|st| st.io.as_ref().map(ListenIo::fd)).unwrap_or(-1);
  c.number(f64::from(fd))
}

/// Bun extra: fills `out` with `{ family, address, port }` of the bound address.
fn getsockname(l: &ListenerHandle, c: &Ctx) -> Result<sys::napi_value> {
  let (e, o) = (c.env, c.arg(0));
  let addr = l.core.st.try_borrow().ok().and_then(|st| st.io.as_ref().and_then(|io| sockopt::local_addr(io.fd())));
  if let (Some(a), sys::ValueType::napi_object) = (addr, js::type_of(e, o)) {
    let _ = js::set(e, o, "family", js::string(e, if a.is_ipv6() { "IPv6" } else { "IPv4" }));
    let _ = js::set(e, o, "address", js::string(e, &a.ip().to_string()));
    let _ = js::set(e, o, "port", js::number(e, f64::from(a.port())));
  }
  c.undefined()
}
