//! The per-environment reactor: socket readiness reaches one libuv `uv_poll_t` (see
//! `poller.rs` for how: registered in libuv's own epoll set, or in a nested one) and is handled
//! on the JS thread inside Node's own event loop.
//!
//! Rules every caller relies on:
//! - The reactor lives in a thread-local (one Node environment per thread, workers included) and
//!   is only ever borrowed for short, JS-free sections ([`with`]); handlers run with no borrow
//!   held, so they may call any socket or listener method, on any socket.
//! - Tokens carry a generation: a token is never reused for another socket while events for the
//!   old one may still be queued.
//! - One ref count drives `uv_ref`/`uv_unref` of the poll handle: ref'd open sockets, ref'd
//!   listening listeners and pending connects. Nothing else keeps Node alive.
//! - An env cleanup hook closes everything, so `worker.terminate()` and `process.exit()` with
//!   sockets open are clean.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::raw::c_void;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mio::Token;
use napi::sys;

use crate::bridge::Bridge;
use crate::conn::Conn;
use crate::js::{self, Env, HandleScope, TopLevel};
use crate::linger::Linger;
use crate::listener::ListenerCore;
use crate::poller::{Poller, Raw};
use crate::slab::Slab;
use crate::uv;

pub(crate) mod wakeup;

pub(crate) enum Entry {
  Conn(Rc<Conn>),
  Listener(Rc<ListenerCore>),
  Linger(Rc<Linger>),
}

impl Clone for Entry {
  fn clone(&self) -> Self {
    match self {
      Entry::Conn(c) => Entry::Conn(c.clone()),
      Entry::Listener(l) => Entry::Listener(l.clone()),
      Entry::Linger(l) => Entry::Linger(l.clone()),
    }
  }
}

pub(crate) struct Reactor {
  pub poller: Poller,
  /// Scratch list of raw events, taken out while a wake-up handles them.
  raw: Option<Vec<Raw>>,
  entries: Slab,
  uv_poll: Option<uv::Handle>,
  lp: *mut c_void,
  timer: Option<uv::Handle>,
  /// When the uv timer will next fire, if it is running.
  timer_due: Option<Instant>,
  timers: BinaryHeap<Reverse<(Instant, usize)>>,
  /// Sockets to revisit on the next loop turn (see [`Reactor::kick`]).
  kicks: Vec<Token>,
  /// Closed sockets whose `close` handlers run on the next loop turn (each holds a ref).
  closes: Vec<crate::conn::Closed>,
  refs: usize,
  refed: bool,
  resource: sys::napi_ref,
  async_ctx: sys::napi_async_context,
  pub noop: sys::napi_ref,
  pub bridge: Arc<Bridge>,
}

thread_local! {
  static REACTOR: RefCell<Option<Reactor>> = const { RefCell::new(None) };
  static ENV: Cell<sys::napi_env> = const { Cell::new(std::ptr::null_mut()) };
}

/// The environment of this thread (null before the addon is used on it).
pub(crate) fn env() -> Env {
  ENV.with(Cell::get)
}

/// Runs `f` on this thread's reactor. `None` if there is none (torn down) or it is already
/// borrowed, which the no-JS-under-borrow rule makes impossible but is handled without panicking.
pub(crate) fn with<R>(f: impl FnOnce(&mut Reactor) -> R) -> Option<R> {
  REACTOR.with(|cell| match cell.try_borrow_mut() {
    Ok(mut guard) => guard.as_mut().map(f),
    Err(_) => None,
  })
}

/// Creates this thread's reactor on first use.
pub(crate) fn ensure(env: Env) -> napi::Result<()> {
  if REACTOR.with(|c| c.borrow().is_some()) {
    return Ok(());
  }
  let mut lp = std::ptr::null_mut();
  js::check(unsafe { sys::napi_get_uv_event_loop(env, &mut lp) }).map_err(|_| napi::Error::from_reason("napi_get_uv_event_loop failed"))?;
  let lp = lp.cast::<c_void>();
  let poller = Poller::new(lp)?;
  crate::debug::debug!("poller: {}", if poller.is_direct() { "direct (libuv's epoll set)" } else { "nested epoll set" });
  let uv_poll = uv::Handle::poll(lp, poller.marker(), wakeup::on_poll).ok_or_else(|| napi::Error::from_reason("uv_poll_init failed"))?;
  let timer = uv::Handle::timer(lp).ok_or_else(|| napi::Error::from_reason("uv_timer_init failed"))?;
  let resource_obj = js::object(env);
  let resource = js::reference(env, resource_obj).map_err(|_| napi::Error::from_reason("napi_create_reference"))?;
  let mut async_ctx = std::ptr::null_mut();
  unsafe { sys::napi_async_init(env, resource_obj, js::string(env, "bunnet"), &mut async_ctx) };
  let noop = js::reference(env, make_noop(env)).map_err(|_| napi::Error::from_reason("noop"))?;
  let bridge = Bridge::new(env)?;
  ENV.with(|e| e.set(env));
  REACTOR.with(|c| {
    *c.borrow_mut() = Some(Reactor {
      poller,
      raw: Some(Vec::with_capacity(64)),
      entries: Slab::default(),
      uv_poll: Some(uv_poll),
      lp,
      timer: Some(timer),
      timer_due: None,
      timers: BinaryHeap::new(),
      kicks: Vec::new(),
      closes: Vec::new(),
      refs: 0,
      refed: false,
      resource,
      async_ctx,
      noop,
      bridge,
    })
  });
  unsafe { sys::napi_add_env_cleanup_hook(env, Some(cleanup), std::ptr::null_mut()) };
  Ok(())
}

unsafe extern "C" fn noop_cb(_env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
  std::ptr::null_mut()
}

fn make_noop(env: Env) -> js::Value {
  js::native_function(env, "noop", noop_cb).unwrap_or(std::ptr::null_mut())
}

impl Reactor {
  pub(crate) fn insert(&mut self, e: Entry) -> Token {
    self.entries.insert(e)
  }

  pub(crate) fn remove(&mut self, t: Token) {
    self.entries.remove(t);
  }

  pub(crate) fn get(&self, t: Token) -> Option<Entry> {
    self.entries.get(t)
  }

  /// Registers `fd` for `token` (edge-triggered; `interest` from [`poller::READ`] and
  /// [`poller::WRITE`]).
  pub(crate) fn register(&self, fd: std::os::fd::RawFd, token: Token, interest: u32) -> std::io::Result<()> {
    self.poller.register(fd, token, interest)
  }

  pub(crate) fn reregister(&self, fd: std::os::fd::RawFd, token: Token, interest: u32) -> std::io::Result<()> {
    self.poller.reregister(fd, token, interest)
  }

  pub(crate) fn deregister(&self, fd: std::os::fd::RawFd, token: Token) -> std::io::Result<()> {
    self.poller.deregister(fd, token)
  }

  /// The open connections accepted by `listener` (for `stop(true)`).
  pub(crate) fn conns_of(&self, listener: &Rc<ListenerCore>) -> Vec<Rc<Conn>> {
    self.entries.conns_of(listener)
  }

  /// Adds (`+1`) or drops (`-1`) one reason to keep the process alive.
  pub(crate) fn adjust_refs(&mut self, delta: isize) {
    self.refs = self.refs.saturating_add_signed(delta);
    let want = self.refs > 0;
    if want != self.refed {
      if let Some(h) = &self.uv_poll {
        h.set_ref(want);
      }
      self.refed = want;
    }
  }

  /// Schedules a timeout check for the socket (or lingering flush) behind `token` at `at`.
  pub(crate) fn schedule(&mut self, at: Instant, token: Token) {
    self.timers.push(Reverse((at, token.0)));
    self.arm_timer();
  }

  /// Revisits the socket behind `token` on the next loop turn (a zero timer), for work that no
  /// readiness edge will announce: plaintext a TLS session still holds after `resume()`.
  pub(crate) fn kick(&mut self, token: Token) {
    if !self.kicks.contains(&token) {
      self.kicks.push(token);
    }
    self.arm_timer();
  }

  /// Runs the `close` handlers of `c` on the next loop turn; the process stays alive until then.
  pub(crate) fn report_later(&mut self, c: crate::conn::Closed) {
    self.closes.push(c);
    self.adjust_refs(1);
    self.arm_timer();
  }

  fn arm_timer(&mut self) {
    let next = if self.kicks.is_empty() && self.closes.is_empty() { self.timers.peek().map(|Reverse((at, _))| *at) } else { Some(Instant::now()) };
    let Some(next) = next else {
      if let Some(t) = &self.timer {
        t.timer_stop();
      }
      self.timer_due = None;
      return;
    };
    if self.timer_due.is_some_and(|due| due <= next) {
      return;
    }
    let wait = next.saturating_duration_since(Instant::now());
    let ms = wait.as_millis() as u64 + u64::from(wait.subsec_nanos() % 1_000_000 != 0);
    if let Some(t) = &self.timer {
      t.timer_start(on_timer, ms);
    }
    self.timer_due = Some(next);
  }

  /// Pops the timeouts that are due now.
  fn due_timers(&mut self) -> Vec<(Instant, Token)> {
    let now = Instant::now();
    let mut due = Vec::new();
    while let Some(Reverse((at, t))) = self.timers.peek().copied() {
      if at > now {
        break;
      }
      self.timers.pop();
      due.push((at, Token(t)));
    }
    self.timer_due = None;
    self.arm_timer();
    due
  }

  /// The scopes every batch of JS calls from libuv runs inside.
  pub(crate) fn scope_values(&self, env: Env) -> Option<(js::Value, sys::napi_async_context)> {
    Some((js::deref(env, self.resource).ok()?, self.async_ctx))
  }
}

/// Prepares a batch of handler calls made from a libuv callback: a handle scope for the values
/// created, and top-level mode for [`js::call`].
pub(crate) fn enter_js(env: Env) -> Option<Scopes> {
  let hs = HandleScope::open(env);
  let (res, ctx) = with(|r| r.scope_values(env)).flatten()?;
  Some(Scopes { _top: TopLevel::enter(env, res, ctx), _hs: hs })
}

/// What [`enter_js`] opens; fields drop in order: top level (and its callback scope, which runs
/// the tick queue one last time) before the handle scope.
pub(crate) struct Scopes {
  _top: TopLevel,
  _hs: HandleScope,
}

unsafe extern "C" fn on_timer(_h: *mut c_void) {
  let env = env();
  let Some(_scopes) = enter_js(env) else { return };
  crate::registry::sweep(env);
  let (kicks, closes) = with(|r| {
    r.timer_due = None;
    (std::mem::take(&mut r.kicks), std::mem::take(&mut r.closes))
  })
  .unwrap_or_default();
  for c in closes {
    let _hs = HandleScope::open(env);
    c.report(env, None);
    let _ = with(|r| r.adjust_refs(-1));
  }
  for token in kicks {
    let Some(Entry::Conn(c)) = with(|r| r.get(token)).flatten() else {
      continue;
    };
    let _hs = HandleScope::open(env);
    crate::conn::on_kick(env, &c);
  }
  let due = with(Reactor::due_timers).unwrap_or_default();
  for (at, token) in due {
    let _hs = HandleScope::open(env);
    match with(|r| r.get(token)).flatten() {
      Some(Entry::Conn(c)) => crate::timeout::on_timeout(env, &c, at),
      Some(Entry::Linger(l)) => l.on_timer(),
      _ => {}
    }
  }
}

thread_local! {
  static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Registers (once per environment, when the addon is loaded) a cleanup hook that clears an
/// exception left pending in the env (a worker terminated while a Node-API call ran JS) under a
/// handle scope. napi-rs's own cleanup hook, registered before this one and so run after it,
/// reads such an exception without a scope, which V8 answers with a fatal error ("Cannot create
/// a handle without a HandleScope"): the stress suite's worker terminations hit it about once
/// in 500 workers.
pub(crate) fn guard_teardown(env: Env) {
  if GUARDED.with(|g| g.replace(true)) {
    return;
  }
  unsafe { sys::napi_add_env_cleanup_hook(env, Some(clear_pending), env.cast()) };
}

unsafe extern "C" fn clear_pending(arg: *mut c_void) {
  let env: Env = arg.cast();
  let _hs = HandleScope::open(env);
  js::take_exception(env);
  GUARDED.with(|g| g.set(false));
}

/// Env teardown (worker exit, process exit): close every socket and listener and both libuv
/// handles, so the loop can close cleanly and no fd outlives the environment.
unsafe extern "C" fn cleanup(_arg: *mut c_void) {
  // Anything below that touches a JS handle (reference deletion, a pending exception left by a
  // terminated worker) needs a scope; cleanup hooks run outside any.
  let _hs = HandleScope::open(env());
  let Some(mut r) = REACTOR.with(|c| c.try_borrow_mut().ok().and_then(|mut g| g.take())) else {
    return;
  };
  r.bridge.close();
  for c in std::mem::take(&mut r.closes) {
    c.forget(env());
  }
  crate::readbuf::teardown();
  crate::batch::teardown();
  crate::handlers::teardown();
  crate::js::teardown_keys();
  crate::js::teardown_ticks();
  for e in r.entries.drain() {
    match e {
      Entry::Conn(c) => c.teardown(),
      Entry::Listener(l) => l.teardown(),
      Entry::Linger(l) => l.teardown(),
    }
  }
  if let Some(h) = r.uv_poll.take() {
    h.close_poll();
  }
  if let Some(t) = r.timer.take() {
    t.close_timer();
  }
  let env = env();
  js::delete_reference(env, r.resource);
  js::delete_reference(env, r.noop);
  ENV.with(|e| e.set(std::ptr::null_mut()));
}
