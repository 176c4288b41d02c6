//! `connect()` (spec §2): validation, name resolution off the JS thread, non-blocking connect
//! attempts over each resolved address in turn, and settling the promise with Bun's rules for
//! `open` and `connectError`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::poller::Ready;
use napi::sys;

use crate::bridge::{self, Completion};
use crate::conn::{self, Conn, How, Io, Pending, Phase};
use crate::error::SysError;
use crate::handlers::{Event, HandlerRef, HANDLER_KEYS};
use crate::js::{self, Called, Env, Value};
use crate::options::{self, Entry as OptEntry, Preread, Target, Tls};
use crate::reactor::{self, Entry};

/// Arguments of a fast-path call: the options, then the values of `OPTION_KEYS` and
/// `HANDLER_KEYS`, then the handler array and mask (see `Handlers::from_js_with`).
const PREREAD_ARGS: usize = 1 + options::OPTION_KEYS.len() + HANDLER_KEYS.len() + 2;

/// The JS `connect(options)` of this environment. An options object whose `socket` is an object
/// has its options and handlers read by property loads in JS, in the order of `OPTION_KEYS` and
/// `HANDLER_KEYS`, and passed as arguments (see `options::Preread`); anything else is passed on
/// alone and read (and reported) natively. The values are the same either way: only a getter
/// could tell, by being called for a key the native path would have skipped (`host` when
/// `hostname` is set, `hostname` when `unix` is), a second time for a `socket` that is not an
/// object (the native path reads it again), or before `hostname`'s `toString` / `port`'s
/// `valueOf` rather than between reads.
///
/// The JS also checks the handler values' types (a function, `undefined` or `null` each; anything
/// else leaves the checks and their messages to the native side) and, when they pass, puts the
/// functions in an array by `Event` with a mask of those given: the set is then one array (see
/// `Handlers::from_js_with`). When every value is the one the previous call read, it passes the
/// previous array again, so connections made with one handler object share one set; an array
/// it made anew is flagged (`handlers::FRESH`), and is then never compared with the last set's.
/// That array is kept in `cache` (see `handlers::js_cache`), which the native side empties when
/// its own last set is another one, so the cache never keeps functions alive that bunnet let go.
/// The JS also flags a `binaryType` of `undefined` (`handlers::BINARY_DEFAULT`) and a call whose
/// `tls`, `allowHalfOpen`, `exclusive`, `reusePort` and `ipv6Only` are all `undefined`
/// (`options::DEFAULTS`), whose checks the native side then skips.
///
/// With the handlers checked, a call whose `unix` is `undefined`, `hostname` a non-empty string
/// and `port` a number, or whose `unix` is a non-empty string, is recorded as the last target
/// (`options::TARGET_RECORDED`), and one whose values are the very ones of the last recorded call
/// (the same `hostname` and `port`, or the same `unix`, the port then recorded as `null`) says so
/// (`options::TARGET_SAME`): the native side then reuses that call's parsed target (see
/// `options::target_of`).
pub(crate) fn js_function(env: Env) -> napi::Result<Value> {
  let key_index = |k: &str| options::OPTION_KEYS.iter().position(|o| *o == k).ok_or_else(|| napi::Error::from_reason(format!("bunnet: no option key {k}")));
  let (iu, ih, ip) = (key_index("unix")?, key_index("hostname")?, key_index("port")?);
  // Locals in read order: `a<i>` the options, `h<i>` the handlers.
  let opts: Vec<String> =
    options::OPTION_KEYS.iter().enumerate().map(|(i, k)| if *k == "socket" { format!("a{i} = s") } else { format!("a{i} = o.{k}") }).collect();
  let hs: Vec<String> = HANDLER_KEYS.iter().enumerate().map(|(i, k)| format!("h{i} = s.{k}")).collect();
  let args: Vec<String> = (0..options::OPTION_KEYS.len()).map(|i| format!("a{i}")).chain((0..HANDLER_KEYS.len()).map(|i| format!("h{i}"))).collect();
  let ce = HANDLER_KEYS.iter().position(|k| *k == "connectError").unwrap_or(0);
  let defaulted = options::DEFAULTED_KEYS.iter().map(|k| key_index(k).map(|i| format!("a{i} === undefined"))).collect::<napi::Result<Vec<_>>>()?;
  let n = HANDLER_KEYS.len() - 1; // the functions; the last key is `binaryType`
  let types: Vec<String> = (0..n).map(|i| format!("if (typeof h{i} === 'function') m |= {}; else if (h{i} != null) ok = false;", 1 << i)).collect();
  let same: Vec<String> = (0..n).map(|i| format!("last[{i}] === h{i}")).collect();
  // `cache`: [the last array, its binaryType] (see `handlers::js_cache`).
  let fns: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
  // With a `connectError` handler the promise counts as handled (its rejection goes unreported),
  // as in Bun: marked here with a `catch` on the JS side, which the native path does itself.
  let src = format!(
    "'use strict'; ((native, cache) => {{ const noop = () => {{}}, target = [undefined, undefined]; return function connect(o) {{ \
     if (typeof o !== 'object' || o === null || Array.isArray(o)) return native(o); const s = o.socket; \
     if (typeof s !== 'object' || s === null) return native(o); const {opts}, {hs}; \
     let m = 0, ok = !Array.isArray(s), a; {types} if (ok) {{ m |= {checked}; const last = cache[0]; \
     if (last !== undefined && cache[1] === h{n} && {same}) a = last; else {{ a = cache[0] = [{fns}]; cache[1] = h{n}; m |= {fresh} }} \
     if (h{n} === undefined) m |= {binary_default}; if ({defaulted}) m |= {defaults}; \
     if (a{iu} === undefined && typeof a{ih} === 'string' && a{ih} !== '' && typeof a{ip} === 'number') {{ m |= {recorded}; \
     if (target[0] === a{ih} && target[1] === a{ip}) m |= {same_target}; target[0] = a{ih}; target[1] = a{ip} }} \
     else if (typeof a{iu} === 'string' && a{iu} !== '') {{ m |= {recorded}; \
     if (target[0] === a{iu} && target[1] === null) m |= {same_target}; target[0] = a{iu}; target[1] = null }} else target[0] = undefined }} \
     const p = native(o, {args}, a, m); if (typeof h{ce} === 'function') p.catch(noop); return p }} }})",
    opts = opts.join(", "),
    hs = hs.join(", "),
    checked = crate::handlers::CHECKED,
    fresh = crate::handlers::FRESH,
    binary_default = crate::handlers::BINARY_DEFAULT,
    defaults = options::DEFAULTS,
    defaulted = defaulted.join(" && "),
    recorded = options::TARGET_RECORDED,
    same_target = options::TARGET_SAME,
    types = types.join(" "),
    same = same.join(" && "),
    fns = fns.join(", "),
    args = args.join(", "),
  );
  let pending = |_| crate::error::pending();
  let native = js::native_function(env, "connect", connect_cb).map_err(pending)?;
  let cache = crate::handlers::js_cache(env).ok_or_else(crate::error::pending)?;
  js::from_script(env, &src, &[native, cache]).map_err(pending)
}

/// The native `connect`: connects over TCP (`hostname` + `port`) or a unix socket (`unix`) and
/// returns a promise of the open `Socket`, settled after its `open` handler ran; a failed connect
/// goes to `connectError` and/or rejects. Invalid options throw synchronously. Called with the
/// options alone, or with the values `js_function`'s JS read from them.
unsafe extern "C" fn connect_cb(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let mut argc = PREREAD_ARGS;
  let mut args = [std::ptr::null_mut(); PREREAD_ARGS];
  if sys::napi_get_cb_info(env, info, &mut argc, args.as_mut_ptr(), std::ptr::null_mut(), std::ptr::null_mut()) != sys::Status::napi_ok {
    return std::ptr::null_mut();
  }
  let options = (argc > 0).then_some(args[0]).filter(|v| !js::is_undefined(env, *v));
  let pre = Preread((argc == PREREAD_ARGS).then(|| args.get(1..)).flatten());
  crate::class::finish(env, catch_unwind(AssertUnwindSafe(|| connect_with(env, options, pre))))
}

fn connect_with(env: Env, options: Option<Value>, pre: Preread) -> napi::Result<Value> {
  // The JS fast path (`js_function`) marks the promise handled itself.
  let fast = pre.0.is_some();
  let cfg = options::parse_with(env, options, OptEntry::Connect, pre).map_err(|e| e.throw(env))?;
  reactor::ensure(env)?;
  let mark = !fast && cfg.handlers.has(Event::ConnectError);
  let is_unix = matches!(cfg.target, Target::Unix(_));
  let conn = Conn::new(HandlerRef::own(cfg.handlers), cfg.allow_half_open, is_unix);
  crate::socket::new_js(env, &conn, cfg.data)?;
  let mut deferred = std::ptr::null_mut();
  let mut promise = std::ptr::null_mut();
  js::check(unsafe { sys::napi_create_promise(env, &mut deferred, &mut promise) }).map_err(|_| crate::error::pending())?;
  if mark {
    // With a connectError handler the failure is reported there; the promise still rejects but
    // counts as handled (no unhandledRejection), as in Bun.
    mark_handled(env, promise);
  }
  // The host (or path) moves into `Pending`; only what an attempt or a lookup needs beside it
  // is copied.
  let (host, port, unix) = match cfg.target {
    Target::Tcp { host, port } => (host, port, false),
    Target::Unix(p) => (p, 0, true),
  };
  let literal = if unix { None } else { parse_ip(&host).map(|ip| SocketAddr::new(ip, port)) };
  let next = match (unix, literal) {
    (true, _) => Next::Attempt(Attempt::Unix(host.clone())),
    (false, Some(_)) => Next::Literal,
    (false, None) => Next::Lookup(host.clone()),
  };
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    let tls = match cfg.tls {
      Tls::On(o) => Some(o),
      Tls::Off => None,
    };
    st.extra_mut().pending = Some(Box::new(Pending { addrs: literal.into_iter().collect(), host, port, deferred, tls }));
  }
  let Some(token) = reactor::with(|r| r.insert(Entry::Conn(conn.clone()))) else {
    return Err(napi::Error::from_reason("bunnet reactor unavailable"));
  };
  conn.token.set(token);
  conn.sync_ref();
  match next {
    Next::Attempt(a) => start_attempt(&conn, a),
    Next::Literal => try_next(&conn),
    Next::Lookup(host) => {
      if let Some(b) = reactor::with(|r| r.bridge.clone()) {
        bridge::resolve(b, token, host, port);
      }
    }
  }
  Ok(promise)
}

/// IP literals connect directly; `connect` also takes the bracketed IPv6 form `[::1]`.
fn parse_ip(host: &str) -> Option<IpAddr> {
  let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
  bare.parse().ok()
}

fn mark_handled(env: Env, promise: Value) {
  let Ok(catch) = js::get(env, promise, "catch") else { return };
  let Some(noop) = reactor::with(|r| js::deref(env, r.noop).ok()).flatten() else { return };
  if let Called::Threw(_) = js::call(env, promise, catch, &[noop]) {}
}

/// What `connect()` does once the socket is registered.
enum Next {
  Attempt(Attempt),
  Literal,
  Lookup(String),
}

enum Attempt {
  Tcp(SocketAddr),
  Unix(String),
}

/// Tries the next resolved address; with none left, the last error is reported.
fn try_next(conn: &Rc<Conn>) {
  let next = conn.st.try_borrow_mut().ok().and_then(|mut st| {
    let p = st.pending_mut()?;
    (!p.addrs.is_empty()).then(|| p.addrs.remove(0))
  });
  match next {
    Some(addr) => start_attempt(conn, Attempt::Tcp(addr)),
    None => post_failure(conn, io::Error::from_raw_os_error(libc::ECONNREFUSED)),
  }
}

fn start_attempt(conn: &Rc<Conn>, attempt: Attempt) {
  let token = conn.token.get();
  match &attempt {
    Attempt::Tcp(a) => crate::debug::debug!("connect: attempting {a}"),
    Attempt::Unix(p) => crate::debug::debug!("connect: attempting unix {p:?}"),
  }
  let (started, remote) = match attempt {
    Attempt::Tcp(addr) => (crate::sockopt::connect_tcp(addr).map(Io::Tcp), Some(peer_of(addr))),
    Attempt::Unix(path) => (crate::sockopt::connect_unix(&path).map(Io::Unix), None),
  };
  let io = match started {
    Ok(io) => io,
    Err(e) => return attempt_failed(conn, e),
  };
  let registered = reactor::with(|r| r.register(io.fd(), token, crate::poller::CONN));
  if let Some(Err(e)) = registered {
    return attempt_failed(conn, e);
  }
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    st.set_remote(remote);
    st.io = Some(io);
    st.phase = Phase::Connecting;
  }
}

/// The peer a connect to `addr` reaches: the unspecified address (`0.0.0.0`, `::`) means this
/// host's loopback (Linux routes it there), which is what `remoteAddress` reports, as in Bun.
fn peer_of(addr: SocketAddr) -> SocketAddr {
  match addr {
    SocketAddr::V4(mut a) if a.ip().is_unspecified() => {
      a.set_ip(std::net::Ipv4Addr::LOCALHOST);
      SocketAddr::V4(a)
    }
    SocketAddr::V6(mut a) if a.ip().is_unspecified() => {
      a.set_ip(std::net::Ipv6Addr::LOCALHOST);
      SocketAddr::V6(a)
    }
    a => a,
  }
}

/// An attempt that failed at once (`connect(2)` itself: ENETUNREACH, EADDRNOTAVAIL, ...): the next
/// resolved address is tried, as after a refused one; the error is reported when none is left.
fn attempt_failed(conn: &Rc<Conn>, error: io::Error) {
  let more = conn.st.try_borrow().ok().and_then(|st| st.pending().map(|p| !p.addrs.is_empty())).unwrap_or(false);
  if more {
    try_next(conn);
  } else {
    post_failure(conn, error);
  }
}

/// Failures found synchronously still reach JS asynchronously (spec §5.3: `connect()` never
/// calls a handler before it returns).
fn post_failure(conn: &Rc<Conn>, error: io::Error) {
  let token = conn.token.get();
  if let Some(b) = reactor::with(|r| r.bridge.clone()) {
    b.post(Completion::Failed { token, error });
  }
}

pub(crate) fn on_completion(env: Env, c: Completion) {
  let token = match &c {
    Completion::Resolved { token, .. } | Completion::Failed { token, .. } => *token,
  };
  let Some(Entry::Conn(conn)) = reactor::with(|r| r.get(token)).flatten() else { return };
  let _hs = js::HandleScope::open(env);
  match c {
    Completion::Failed { error, .. } => fail(env, &conn, &error),
    Completion::Resolved { result, .. } => {
      let ok = match result {
        Ok(addrs) if !addrs.is_empty() => {
          if let Ok(mut st) = conn.st.try_borrow_mut() {
            if let Some(p) = st.pending_mut() {
              p.addrs = addrs;
            }
          }
          true
        }
        _ => false,
      };
      if ok {
        try_next(&conn);
      } else {
        let host = conn.st.try_borrow().ok().and_then(|st| st.pending().map(|p| p.host.clone()));
        fail_with(env, &conn, &SysError::not_found(&host.unwrap_or_default()));
      }
    }
  }
}

/// Readiness while a connect is in flight: success opens the socket, failure moves on to the
/// next address or reports.
pub(crate) fn on_connect_event(env: Env, conn: &Rc<Conn>, ev: &Ready) {
  let outcome = {
    let Ok(st) = conn.st.try_borrow() else { return };
    let Some(io) = st.io.as_ref() else { return };
    // Writable with no error or hang-up: the connect completed (a failed one reports EPOLLERR),
    // so SO_ERROR need not be read (one syscall less per connection; Bun does the same).
    if ev.is_writable() && !ev.is_error() && !ev.is_write_closed() {
      Ok(true)
    } else {
      match io.take_error() {
        Ok(Some(e)) | Err(e) => Err(e),
        Ok(None) if ev.is_error() || ev.is_write_closed() => Err(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
        Ok(None) => Ok(false),
      }
    }
  };
  match outcome {
    Ok(true) => {
      connected(env, conn);
      // The same edge may already carry data (or the peer's FIN) that arrived before we saw
      // the connect complete: edge-triggered, it will not be reported again.
      if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
        conn::on_event(env, conn, ev);
      }
    }
    Ok(false) => {}
    Err(e) => {
      let more = {
        let Ok(mut st) = conn.st.try_borrow_mut() else { return };
        if let Some(io) = st.io.take() {
          let token = conn.token.get();
          let _ = reactor::with(|r| r.deregister(io.fd(), token));
        }
        st.phase = Phase::Resolving;
        st.pending().is_some_and(|p| !p.addrs.is_empty())
      };
      if more {
        try_next(conn);
      } else {
        fail(env, conn, &e);
      }
    }
  }
}

fn connected(env: Env, conn: &Rc<Conn>) {
  let (deferred, tls) = {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return };
    crate::debug::debug!(
      "connect: connected fd {} to {}",
      st.io.as_ref().map_or(-1, Io::fd),
      st.remote.as_ref().map_or_else(|| "unix socket".to_string(), |a| a.get().to_string())
    );
    st.phase = Phase::Open;
    match st.take_pending() {
      Some(p) => {
        let p = *p;
        if p.host.parse::<std::net::IpAddr>().is_err() {
          st.extra_mut().host = Some(p.host.clone().into_boxed_str());
        }
        (Some(p.deferred), p.tls.map(|t| (t, p.host)))
      }
      None => (None, None),
    }
  };
  conn.sync_ref();
  let Some(socket) = conn.socket(env) else { return };
  if let Some((opts, host)) = tls {
    if conn.handlers().is_some_and(|h| h.has(Event::Handshake)) {
      // With a handshake handler, open runs at TCP connect (then the promise resolves); the
      // ClientHello waits for it so setSession()/setServername() in open take effect.
      if let Ok(mut st) = conn.st.try_borrow_mut() {
        st.extra_mut().pending_tls = Some(Box::new(crate::tls::PendingClient { opts, host, early: Vec::new(), session: None, servername: None }));
      }
      conn::emit_open(env, conn);
      if let Err(e) = crate::tls::start_pending(conn) {
        crate::debug::debug!("tls: cannot start: {e}");
        conn::close(env, conn, How::Reset, None);
      } else {
        crate::tls::mark_opened(conn);
      }
    } else if let Err(e) = crate::tls::start_client(conn, &opts, &host, None) {
      // Without one, the promise resolves now and open runs after the handshake.
      crate::debug::debug!("tls: cannot start: {e}");
      conn::close(env, conn, How::Reset, None);
    }
  } else {
    conn::emit_open(env, conn);
  }
  if let Some(d) = deferred {
    js::settle(env, d, socket, true);
  }
}

fn fail(env: Env, conn: &Rc<Conn>, e: &io::Error) {
  let (host, port) = conn.st.try_borrow().ok().and_then(|st| st.pending().map(|p| (p.host.clone(), p.port))).unwrap_or_default();
  let is_unix = conn.st.try_borrow().is_ok_and(|st| st.is_unix);
  let err = SysError::connect(e, Some(host), (!is_unix).then_some(port));
  fail_with(env, conn, &err);
}

/// Settles a failed connect: `connectError(socket, err)` if present (its throw replaces the
/// rejection reason), then the promise rejects with an equal but distinct error.
fn fail_with(env: Env, conn: &Rc<Conn>, err: &SysError) {
  crate::debug::debug!("connect: failed: {} ({})", err.code, err.message);
  let (deferred, slot, js_ref) = {
    let Ok(mut st) = conn.st.try_borrow_mut() else { return };
    st.phase = Phase::Closed;
    st.io = None;
    (st.take_pending().map(|p| p.deferred), st.handlers.take(), crate::socket::SocketHandle::take_ref(&mut st.js))
  };
  let token = conn.token.get();
  reactor::with(|r| r.remove(token));
  conn.sync_ref();
  let socket = js::deref(env, js_ref).ok();
  let first = err.to_js(env);
  let reason = match (slot.and_then(|s| s.current()), socket) {
    (Some(h), Some(s)) if h.has(Event::ConnectError) => match conn::invoke(env, &h, Event::ConnectError, s, &[first]) {
      Some(Called::Threw(x)) => x,
      _ => err.to_js(env),
    },
    _ => first,
  };
  if let Some(d) = deferred {
    js::settle(env, d, reason, false);
  }
  crate::class::release(env, js_ref);
}
