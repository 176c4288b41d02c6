//! Calling JS from the reactor: the `Called` outcome, top-level mode (one callback scope per
//! libuv callback, with microtasks and `nextTick`s drained after every handler through a JS
//! trampoline), plain nested calls, and promise settling. Split from `js` (the raw Node-API
//! value helpers), which re-exports everything here.

use std::cell::Cell;
use std::ptr;

use napi::sys;

use crate::js::{deref, element, fatal_exception, from_script, native_function, reference, take_exception, type_of, undefined, CallbackScope, Env, Value};

/// Outcome of calling a JS function: its return value, or the exception it threw (already
/// cleared from the environment so the caller decides where it goes).
pub(crate) enum Called {
  Returned(Value),
  Threw(Value),
  /// The call could not run at all (environment tearing down).
  Unavailable,
}

thread_local! {
  /// Set while the reactor dispatches from libuv (not from inside JS): the async context and
  /// resource that top-level handler calls run under.
  static TOP: Cell<Option<(Value, sys::napi_async_context)>> = const { Cell::new(None) };
  /// This env's top-level call trampolines (see [`TopLevel`]) and `process._tickCallback`
  /// wrapper, `TRAMPOLINES` references; null until first used, and for good if
  /// `process._tickCallback` is not a function.
  static TICKS: Cell<Option<(Env, [sys::napi_ref; TRAMPOLINES])>> = const { Cell::new(None) };
}

/// Fixed-arity trampolines for handlers called with 0–3 arguments, one for any count, the
/// handler-set callers for 1–4 arguments (see [`call_in_set`]), and the tick queue runner (last).
const TRAMPOLINES: usize = 10;
const TICK: usize = TRAMPOLINES - 1;
const ANY_ARITY: usize = 4;
/// The index of the handler-set caller for one argument (the others follow).
const IN_SET: usize = ANY_ARITY + 1;
/// The most arguments a handler-set caller passes on.
const IN_SET_MAX: usize = 4;

/// The trampolines of `env` (made on first use), if it has them.
fn trampolines(env: Env) -> Option<[sys::napi_ref; TRAMPOLINES]> {
  let refs = match TICKS.with(Cell::get) {
    Some((e, refs)) if e == env => refs,
    Some(_) => return None,
    None => {
      // A trampoline calls the handler with the caller's argument count (handlers can see it),
      // then runs the `nextTick` queue inline (no second JS call per handler); a callback of
      // that queue that throws is an uncaught exception, as after Node's own callbacks, and
      // never counts as a throw of the handler before it: that would route it to the socket's
      // `error` handler (and leave Node's async-id stack as the failed callback left it, which
      // Node aborts on when the callback scope closes).
      let src = "(fatal => { const raw = process._tickCallback; if (typeof raw !== 'function') return []; return [\
        function bunnetTop(f, t) { const r = f.call(t); try { raw() } catch (e) { fatal(e) } return r }, \
        function bunnetTop(f, t, a) { const r = f.call(t, a); try { raw() } catch (e) { fatal(e) } return r }, \
        function bunnetTop(f, t, a, b) { const r = f.call(t, a, b); try { raw() } catch (e) { fatal(e) } return r }, \
        function bunnetTop(f, t, a, b, c) { const r = f.call(t, a, b, c); try { raw() } catch (e) { fatal(e) } return r }, \
        function bunnetTop(f, t, ...a) { const r = f.apply(t, a); try { raw() } catch (e) { fatal(e) } return r }, \
        function bunnetCall(k, c, i, e, t, a) { const r = c[i][e].call(t, a); if (k) { try { raw() } catch (e) { fatal(e) } } return r }, \
        function bunnetCall(k, c, i, e, t, a, b) { const r = c[i][e].call(t, a, b); if (k) { try { raw() } catch (e) { fatal(e) } } return r }, \
        function bunnetCall(k, c, i, e, t, a, b, d) { const r = c[i][e].call(t, a, b, d); if (k) { try { raw() } catch (e) { fatal(e) } } return r }, \
        function bunnetCall(k, c, i, e, t, a, b, d, g) { const r = c[i][e].call(t, a, b, d, g); if (k) { try { raw() } catch (e) { fatal(e) } } return r }, \
        function bunnetTick() { try { raw() } catch (e) { fatal(e) } }] })";
      let fatal = native_function(env, "fatal", fatal_cb).ok()?;
      let arr = from_script(env, src, &[fatal]).ok()?;
      let mut refs = [ptr::null_mut(); TRAMPOLINES];
      for (i, r) in refs.iter_mut().enumerate() {
        let Some(f) = element(env, arr, i as u32).filter(|f| type_of(env, *f) == sys::ValueType::napi_function) else {
          refs = [ptr::null_mut(); TRAMPOLINES];
          break;
        };
        *r = reference(env, f).ok()?;
      }
      TICKS.with(|t| t.set(Some((env, refs))));
      refs
    }
  };
  (!refs[TICK].is_null()).then_some(refs)
}

/// The top-level trampoline for a handler called with `argc` arguments.
fn trampoline(env: Env, argc: usize) -> Option<Value> {
  deref(env, trampolines(env)?[argc.min(ANY_ARITY)]).ok()
}

/// This env's `nextTick` queue runner (throws from the queue become uncaught exceptions).
pub(crate) fn tick_fn(env: Env) -> Option<Value> {
  deref(env, trampolines(env)?[TICK]).ok()
}

/// `fatal(e)`: `e` is an uncaught exception (Node's `process._fatalException` handling).
unsafe extern "C" fn fatal_cb(env: Env, info: sys::napi_callback_info) -> Value {
  let mut argc = 1;
  let mut e = ptr::null_mut();
  if sys::napi_get_cb_info(env, info, &mut argc, &mut e, ptr::null_mut(), ptr::null_mut()) == sys::Status::napi_ok && argc == 1 {
    fatal_exception(env, e);
  }
  ptr::null_mut()
}

/// Env teardown: forget the trampoline references (the environment frees them).
pub(crate) fn teardown_ticks() {
  TICKS.with(|t| t.set(None));
}

/// Marks a stretch of code as running at the top of the JS stack (a libuv callback): every
/// handler called from it is followed by a microtask checkpoint and the `nextTick` queue, as Node
/// does after every I/O callback (MakeCallback). One callback scope (the async context) covers
/// the whole stretch, and each handler is called through a JS trampoline that runs
/// `process._tickCallback()` after it: Node's own timers drain between callbacks the same way.
/// That replaces a `napi_make_callback` per event (a C++ callback scope opened and closed around
/// each call), which was the largest single cost of an event after the kernel's.
pub(crate) struct TopLevel {
  prev: Option<(Value, sys::napi_async_context)>,
  _scope: Option<CallbackScope>,
}

impl TopLevel {
  pub(crate) fn enter(env: Env, resource: Value, ctx: sys::napi_async_context) -> Self {
    let scope = trampolines(env).map(|_| CallbackScope::open(env, resource, ctx));
    TopLevel { prev: TOP.with(|t| t.replace(Some((resource, ctx)))), _scope: scope }
  }
}

impl Drop for TopLevel {
  fn drop(&mut self) {
    TOP.with(|t| t.set(self.prev));
  }
}

/// The top-level state as it is now, to be entered again with [`Reenter`] by a native callback
/// that JS called while a plain call had left top level (see `batch`).
pub(crate) type TopState = Option<(Value, sys::napi_async_context)>;

pub(crate) fn top_state() -> TopState {
  TOP.with(Cell::get)
}

/// Runs at `state`'s top level until dropped, then restores what was there.
pub(crate) struct Reenter(TopState);

impl Reenter {
  pub(crate) fn enter(state: TopState) -> Self {
    Reenter(TOP.with(|t| t.replace(state)))
  }
}

impl Drop for Reenter {
  fn drop(&mut self) {
    TOP.with(|t| t.set(self.0));
  }
}

/// Whether calls made now run at top level (see [`TopLevel`]).
pub(crate) fn at_top() -> bool {
  TOP.with(|t| t.get().is_some())
}

/// Runs `process._tickCallback()` if at top level (after work done outside a handler call, such
/// as settling a promise).
pub(crate) fn drain_ticks(env: Env) {
  if !at_top() {
    return;
  }
  if let Some(tick) = tick_fn(env) {
    let top = TOP.with(|t| t.take());
    let mut ret = ptr::null_mut();
    let st = unsafe { sys::napi_call_function(env, undefined(env), tick, 0, ptr::null(), &mut ret) };
    TOP.with(|t| t.set(top));
    if st != sys::Status::napi_ok {
      if let Some(e) = take_exception(env) {
        fatal_exception(env, e);
      }
    }
  }
}

/// Calls `f` with `this`. At top level the call goes through the tick trampoline (microtasks and
/// `nextTick`s run right after it, see [`TopLevel`]), or is a `MakeCallback` where that
/// trampoline is unavailable; nested inside JS (a handler run synchronously by a socket method)
/// it is a plain call.
pub(crate) fn call(env: Env, this: Value, f: Value, args: &[Value]) -> Called {
  let mut ret = ptr::null_mut();
  let top = TOP.with(|t| t.take());
  let st = match top {
    Some((_, ctx)) => {
      let st = match trampoline(env, args.len()) {
        Some(tr) if args.len() <= 6 => {
          let mut all = [ptr::null_mut(); 8];
          all[0] = f;
          all[1] = this;
          all[2..2 + args.len()].copy_from_slice(args);
          unsafe { sys::napi_call_function(env, this, tr, args.len() + 2, all.as_ptr(), &mut ret) }
        }
        _ => unsafe { sys::napi_make_callback(env, ctx, this, f, args.len(), args.as_ptr(), &mut ret) },
      };
      TOP.with(|t| t.set(top));
      st
    }
    None => unsafe { sys::napi_call_function(env, this, f, args.len(), args.as_ptr(), &mut ret) },
  };
  if st == sys::Status::napi_ok {
    return Called::Returned(ret);
  }
  match take_exception(env) {
    Some(e) => Called::Threw(e),
    None => Called::Unavailable,
  }
}

/// Calls the function at `chunk[slot][index]` (a handler in its set, see `handlers`) with `this`,
/// as [`call`] would call it: the function is read by a small JS caller, where element loads are
/// far cheaper than two `napi_get_element`s, which then runs the tick queue if at top level.
/// Without the callers (no `process._tickCallback`) or with more than four arguments, the
/// function is read here and [`call`]ed.
pub(crate) fn call_in_set(env: Env, chunk: Value, slot: u32, index: u32, this: Value, args: &[Value]) -> Called {
  let caller = match trampolines(env) {
    Some(refs) if (1..=IN_SET_MAX).contains(&args.len()) => deref(env, refs[IN_SET + args.len() - 1]).ok(),
    _ => None,
  };
  let Some(caller) = caller else {
    return match element(env, chunk, slot).and_then(|set| element(env, set, index)) {
      Some(f) => call(env, this, f, args),
      None => Called::Unavailable,
    };
  };
  let mut all = [ptr::null_mut(); 5 + IN_SET_MAX];
  all[0] = crate::js::boolean(env, at_top());
  all[1] = chunk;
  all[2] = crate::js::number(env, f64::from(slot));
  all[3] = crate::js::number(env, f64::from(index));
  all[4] = this;
  all[5..5 + args.len()].copy_from_slice(args);
  // The caller runs the tick queue itself when at top level (its first argument).
  call_plain(env, this, caller, &all[..5 + args.len()])
}

/// Whether calls made now should run `process._tickCallback()` after the handler themselves (at
/// top level, with the trampoline available): for the `data` trampoline, which does that.
pub(crate) fn ticking_top(env: Env) -> bool {
  at_top() && trampolines(env).is_some()
}

/// Calls `f` with `this` as a plain call, with top level left for the duration (calls the
/// callee makes through bunnet are nested ones).
pub(crate) fn call_plain(env: Env, this: Value, f: Value, args: &[Value]) -> Called {
  let mut ret = ptr::null_mut();
  let top = TOP.with(|t| t.take());
  let st = unsafe { sys::napi_call_function(env, this, f, args.len(), args.as_ptr(), &mut ret) };
  TOP.with(|t| t.set(top));
  if st == sys::Status::napi_ok {
    return Called::Returned(ret);
  }
  match take_exception(env) {
    Some(e) => Called::Threw(e),
    None => Called::Unavailable,
  }
}

/// Resolves (`ok`) or rejects a promise; at top level its reactions run before control returns
/// to libuv (right away, as a `MakeCallback` would).
pub(crate) fn settle(env: Env, deferred: sys::napi_deferred, value: Value, ok: bool) {
  let top = TOP.with(Cell::get);
  let legacy = top.is_some() && trampolines(env).is_none();
  {
    let _scope = if legacy { top.map(|(res, ctx)| CallbackScope::open(env, res, ctx)) } else { None };
    unsafe {
      if ok {
        sys::napi_resolve_deferred(env, deferred, value);
      } else {
        sys::napi_reject_deferred(env, deferred, value);
      }
    }
  }
  if !legacy {
    drain_ticks(env);
  }
}
