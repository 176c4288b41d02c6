//! The `data` events of a wake-up, delivered from one JS call.
//!
//! Calling into JS from native code (`napi_call_function`: a `TryCatch`, the context, V8's
//! `Invoke` and `JSEntry`) is the largest user-space cost of a small `data` event after the
//! kernel's: ~1 µs on the critical path of a wake-up with peers in another process (cold caches),
//! ~3 % of in-process ping-pong cycles. When a round of a wake-up has a readiness report that
//! needs nothing but a read whose chunk goes to `data` ([`crate::conn::plain_read`]), all its
//! reports are queued instead, and one JS loop (`bunnetBatch`) takes them in order: for each it
//! calls the native `step()`, which makes that socket's read right then (nothing is read ahead,
//! so a handler that pauses, closes or reloads another socket sees exactly what it would see
//! without the loop) and returns the socket, with where its handler and chunk are written into a
//! shared `Int32Array`; the loop calls the handler with a `Buffer` view of the chunk and runs the
//! tick queue, as the one-event trampoline does (`readbuf`). A JS-to-native call is much cheaper
//! than the other direction, and no argument values are made per event.
//!
//! Once through the queue, `step()` runs the wake-up's next round itself
//! ([`wakeup::advance`]: a re-poll, or a wait in libuv's set), whose reports are queued too, and
//! returns `undefined` only when the wake-up is over. So a wake-up that waits for its peer's
//! answers (peers in another process) makes one call into JS, not one per event.
//!
//! Anything else a queued report needs by the time its turn comes (a full read, the end of the
//! stream, an error, a TLS start, a drain owed, a connect, an accept, a linger flush) is handled
//! by `step()` the usual way, at top level, so the order of events is the same as without the
//! loop. A round with no such read, outside the loop, takes the usual path.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use napi::sys;

use crate::calls::{Reenter, TopState};
use crate::conn::{self, Conn};
use crate::handlers::Handlers;
use crate::js::{self, Env, HandleScope, Value};
use crate::poller::Ready;
use crate::reactor::{wakeup, Entry};
use crate::readbuf::{self, Chunk, Read};

/// Fields of the shared `Int32Array`: where the handler is (registry chunk, slot), the slab's
/// generation, the chunk's offset and length.
const FIELDS: usize = 5;

thread_local! {
  /// This env's loop function and the shared array's memory; `None` until first used, and a
  /// null reference for good when it cannot be made.
  static SHARED: Cell<Option<(Env, sys::napi_ref, *mut i32)>> = const { Cell::new(None) };
  static QUEUE: RefCell<Queue> = const { RefCell::new(Queue::new()) };
  /// Set while the JS loop runs.
  static RUNNING: Cell<bool> = const { Cell::new(false) };
}

struct Queue {
  items: Vec<(Entry, Ready)>,
  /// The slab generation the JS loop holds (it asks `slab()` for a new one).
  gen: Option<u32>,
  /// The next item `step()` takes.
  next: usize,
  /// The top level the loop's caller left (see `calls::Reenter`).
  top: TopState,
  /// The connection and handler set of the event being delivered (where a throw goes).
  current: Option<(Rc<Conn>, Rc<Handlers>)>,
}

impl Queue {
  const fn new() -> Self {
    Queue { items: Vec::new(), gen: None, next: 0, top: None, current: None }
  }
}

/// Queues reports; [`flush`] delivers them. The number queued.
pub(crate) fn extend(reports: impl Iterator<Item = (Entry, Ready)>) -> usize {
  QUEUE.with(|q| {
    let Ok(mut q) = q.try_borrow_mut() else { return 0 };
    let before = q.items.len();
    q.items.extend(reports);
    q.items.len() - before
  })
}

/// What a nested event loop's wake-up (run by a handler) sets aside: the queue and whether the
/// loop runs; [`resume`] puts them back.
pub(crate) struct Suspended(Option<(Queue, bool)>);

pub(crate) fn suspend() -> Suspended {
  let queue = QUEUE.with(|q| q.try_borrow_mut().ok().filter(|q| !q.items.is_empty() || q.top.is_some()).map(|mut q| std::mem::replace(&mut *q, Queue::new())));
  Suspended(queue.map(|q| (q, RUNNING.with(|r| r.replace(false)))))
}

pub(crate) fn resume(s: Suspended) {
  if let Some((queue, running)) = s.0 {
    QUEUE.with(|q| q.try_borrow_mut().map(|mut q| *q = queue).ok());
    RUNNING.with(|r| r.set(running));
  }
}

/// Whether the JS loop is running (its `step()` queues a round's reports as they come).
pub(crate) fn running() -> bool {
  RUNNING.with(Cell::get)
}

/// Whether queued reports would go through the JS loop (handlers run at top level with the tick
/// trampoline, and the loop could be made).
pub(crate) fn usable(env: Env) -> bool {
  js::ticking_top(env) && function(env).is_some()
}

/// Delivers the queued reports, in order: through the JS loop when handlers run at top level
/// with the tick trampoline (the loop goes on with the wake-up's next rounds when through them,
/// see `wakeup::advance`), else (and for any the loop did not reach) one by one.
pub(crate) fn flush(env: Env) {
  let len = QUEUE.with(|q| q.try_borrow().map_or(0, |q| q.items.len()));
  if len == 0 || running() {
    return;
  }
  if js::ticking_top(env) {
    if let Some(f) = function(env) {
      let ready = QUEUE.with(|q| {
        let mut q = q.try_borrow_mut().ok()?;
        q.next = 0;
        q.gen = None;
        q.top = crate::calls::top_state();
        Some(())
      });
      if ready.is_some() {
        crate::debug::debug!("batch: {len} reports through one JS loop");
        RUNNING.with(|r| r.set(true));
        let called = js::call_plain(env, js::undefined(env), f, &[]);
        RUNNING.with(|r| r.set(false));
        if let js::Called::Threw(e) = called {
          js::fatal_exception(env, e);
        }
      }
    }
  }
  loop {
    let item = QUEUE.with(|q| {
      let mut q = q.try_borrow_mut().ok()?;
      let item = q.items.get(q.next).cloned()?;
      q.next += 1;
      Some(item)
    });
    let Some((entry, ready)) = item else { break };
    // Each its own handles, as a round gives every 16 events a scope.
    let _hs = HandleScope::open(env);
    wakeup::dispatch(env, entry, &ready);
  }
  clear();
}

/// `step()`: handles queued reports (and, once through them, the wake-up's next rounds) until one
/// has a chunk for `data`: returns its socket (the chunk described in the shared array), or
/// `undefined` when the wake-up is over.
unsafe extern "C" fn step_cb(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
  crate::class::finish(env, catch_unwind(AssertUnwindSafe(|| Ok(step(env).unwrap_or(ptr::null_mut())))))
}

fn step(env: Env) -> Option<Value> {
  loop {
    let next = QUEUE.with(|q| {
      let mut q = q.try_borrow_mut().ok()?;
      let (entry, ready) = q.items.get(q.next).cloned()?;
      q.next += 1;
      q.current = None;
      Some((entry, ready, q.top))
    });
    let Some((entry, ready, top)) = next else {
      if wakeup::advance(env) {
        continue;
      }
      return None;
    };
    let _top = Reenter::enter(top);
    let conn = match entry {
      Entry::Conn(c) if conn::plain_read(&c, &ready) => c,
      entry => {
        let _hs = HandleScope::open(env);
        wakeup::dispatch(env, entry, &ready);
        continue;
      }
    };
    if let Some(socket) = read(env, &conn) {
      return Some(socket);
    }
  }
}

/// The read of a report that needs nothing else: its socket when the chunk goes to `data` from
/// the loop; otherwise whatever the read gave is handled here.
///
/// Its handles live in `step()`'s scope, which a wake-up's reads that end here (at most its event
/// budget) share.
fn read(env: Env, conn: &Rc<Conn>) -> Option<Value> {
  let (h, r) = conn::read_once(env, conn)?;
  match r {
    Read::Data(Chunk::View { ab, off, len }, false) => {
      // No `data` handler, or no object (closing): the chunk is dropped, as `deliver` does.
      let (chunk, slot) = h.data_slot()?;
      let socket = conn.socket(env)?;
      let (_, _, m) = SHARED.with(Cell::get)?;
      let gen = readbuf::slab_gen();
      // The event being delivered is recorded; a slab the loop does not hold yet (it will ask
      // `slab()` for it) must be one it can have, or the chunk is delivered here.
      let recorded = QUEUE.with(|q| {
        let Ok(mut q) = q.try_borrow_mut() else { return false };
        if q.gen != Some(gen) {
          if readbuf::slab_now(env).is_none() {
            return false;
          }
          q.gen = Some(gen);
        }
        q.current = Some((conn.clone(), h.clone()));
        true
      });
      if !recorded {
        conn::read_on(env, conn, false, h, Read::Data(Chunk::View { ab, off, len }, false));
        return None;
      }
      let fields = [chunk as i32, slot as i32, gen as i32, off as i32, len as i32];
      // SAFETY: `m` is the FIELDS-long backing store of the loop's own Int32Array, which only
      // that closure can reach (never detached).
      unsafe { ptr::copy_nonoverlapping(fields.as_ptr(), m, FIELDS) };
      Some(socket)
    }
    r => {
      conn::read_on(env, conn, false, h, r);
      None
    }
  }
}

/// `fail(socket, error)`: the `data` handler (or the tick queue after it) threw; routed by Bun's
/// rule, at top level, as the one-event path does.
unsafe extern "C" fn fail_cb(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let mut argc = 2;
  let mut args = [ptr::null_mut(); 2];
  if sys::napi_get_cb_info(env, info, &mut argc, args.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
    return ptr::null_mut();
  }
  let [socket, err] = args;
  crate::class::finish(
    env,
    catch_unwind(AssertUnwindSafe(|| {
      let (h, top) = QUEUE.with(|q| q.try_borrow().map(|q| (q.current.clone(), q.top)).unwrap_or((None, None)));
      let _top = Reenter::enter(top);
      match h {
        Some((c, h)) => conn::route_error(env, &conn::routed(&c, h), socket, err),
        None => js::fatal_exception(env, err),
      }
      Ok(ptr::null_mut())
    })),
  )
}

/// `slab()`: the current slab (the loop asks when the generation in the shared array changed).
unsafe extern "C" fn slab_cb(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
  readbuf::slab_now(env).unwrap_or(ptr::null_mut())
}

/// This env's `bunnetBatch`, made on first use.
fn function(env: Env) -> Option<Value> {
  match SHARED.with(Cell::get) {
    Some((e, f, _)) if e == env && !f.is_null() => return js::deref(env, f).ok(),
    Some(_) => return None,
    None => {}
  }
  let made = make(env);
  if made.is_none() {
    // Batching stays off in this env; what the failed attempt threw (a script that cannot run,
    // e.g. with `Buffer` deleted) must not be taken for the next handler's exception.
    let _ = js::take_exception(env);
  }
  SHARED.with(|s| s.set(Some(made.map_or((env, ptr::null_mut(), ptr::null_mut()), |(f, m)| (env, f, m)))));
  js::deref(env, made?.0).ok()
}

fn make(env: Env) -> Option<(sys::napi_ref, *mut i32)> {
  let dir = crate::registry::directory(env)?;
  let (mut mem, mut ab, mut m) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
  js::check(unsafe { sys::napi_create_arraybuffer(env, FIELDS * 4, &mut mem, &mut ab) }).ok()?;
  js::check(unsafe { sys::napi_create_typedarray(env, sys::TypedarrayType::int32_array, FIELDS, ab, 0, &mut m) }).ok()?;
  let native = |name, cb| js::native_function(env, name, cb).ok();
  let args = [dir, m, native("step", step_cb)?, native("fail", fail_cb)?, native("slab", slab_cb)?];
  // `dir[m[0]][m[1]][DATA]` is the handler (see `Handlers::data_slot`); the view maker and the tick
  // function are captured once, as in `readbuf`'s one-event trampoline. A throw from the handler goes to
  // `fail` (Bun's routing); the tick queue's own throws are uncaught exceptions (`calls::tick_fn`).
  // Strict, so that no stack-trace API hands the function to user code (`getFunction()`).
  let src = "'use strict'; (V, tick) => (dir, m, step, fail, slab) => function bunnetBatch() { let ab, gen; \
    for (;;) { const s = step(); if (s === undefined) return; \
    if (m[2] !== gen || ab === undefined) { gen = m[2]; ab = slab() } \
    try { dir[m[0]][m[1]][DATA].call(s, s, V(ab, m[3], m[4])) } catch (e) { fail(s, e) } tick() } }";
  let captured = [readbuf::view_fn(env)?, crate::calls::tick_fn(env)?];
  let src = src.replace("[DATA]", &format!("[{}]", crate::handlers::DATA_INDEX));
  let maker = js::from_script(env, &src, &captured).ok()?;
  let mut f = ptr::null_mut();
  js::check(unsafe { sys::napi_call_function(env, js::undefined(env), maker, args.len(), args.as_ptr(), &mut f) }).ok()?;
  Some((js::reference(env, f).ok()?, mem.cast()))
}

/// Empties the queue (its connections are let go).
fn clear() {
  QUEUE.with(|q| {
    if let Ok(mut q) = q.try_borrow_mut() {
      q.items.clear();
      q.gen = None;
      q.next = 0;
      q.top = None;
      q.current = None;
    }
  });
}

/// Env teardown: forget the function (the environment frees it) and the queue.
pub(crate) fn teardown() {
  SHARED.with(|s| s.set(None));
  clear();
}
