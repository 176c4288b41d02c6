//! The per-environment registry of handler sets (see `handlers::Handlers`): fixed-size JS arrays
//! ("chunks") of slots, each slot holding one set's array of functions, and when the slots of
//! dropped sets are cleared (swept) so that their functions can be collected.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use napi::sys;

use crate::js::{self, Env, Value};

/// Sets per registry chunk (a chunk is one JS array of `CHUNK_SETS` slots, 8 KiB).
pub(crate) const CHUNK_SETS: u32 = 1024;

/// The per-environment (per-thread) registry array and its bookkeeping.
struct Registry {
  env: Env,
  /// Strong references to the chunk arrays.
  chunks: Vec<sys::napi_ref>,
  /// A JS array of the chunk arrays, in order (how `batch`'s JS loop finds a handler).
  dir: sys::napi_ref,
  /// Bases free for reuse (their slots already cleared).
  free: Vec<u32>,
  /// Bases of dropped sets whose slots still hold their arrays: cleared by [`sweep`], which runs
  /// where a handle scope is open (a set can be dropped from anywhere, e.g. a GC finalizer, and
  /// clearing creates handles): at the start and end of every wake-up, at every timer, after a
  /// native method (`class::finish`), or overwritten by a new set (`allocate`).
  dropped: Vec<u32>,
  next: u32,
}

thread_local! {
  static REG: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Dropped sets not yet swept or reused, all threads together: [`sweep`], which runs after every
/// native method, returns at once when it is 0 (no thread-local access). Only ever an upper
/// bound for one thread (another thread's sets only cost it a look at its own list).
static UNSWEPT: AtomicUsize = AtomicUsize::new(0);

/// Marks a reactor wake-up for its duration: [`sweep`]s on entry (sets dropped since the last
/// one, e.g. by finalizers) and, when dropped (the wake-up's scopes still open), what the wake-up
/// left.
pub(crate) struct WakeSweep(Env);

impl WakeSweep {
  pub(crate) fn enter(env: Env) -> Self {
    sweep(env);
    WakeSweep(env)
  }
}

impl Drop for WakeSweep {
  fn drop(&mut self) {
    sweep(self.0);
  }
}

/// Releases the functions of dropped sets. Call with a handle scope open.
pub(crate) fn sweep(env: Env) {
  if UNSWEPT.load(Relaxed) == 0 {
    return;
  }
  REG.with(|r| {
    let Ok(mut g) = r.try_borrow_mut() else { return };
    let Some(reg) = g.as_mut() else { return };
    if reg.dropped.is_empty() || reg.env != env {
      return;
    }
    let undef = js::undefined(env);
    while let Some(&base) = reg.dropped.last() {
      let Some((chunk, i)) = reg.locate(env, base) else { return };
      // Fails while an exception is pending (a method that threw): left for the next sweep.
      if unsafe { sys::napi_set_element(env, chunk, i, undef) } != sys::Status::napi_ok {
        return;
      }
      reg.dropped.pop();
      UNSWEPT.fetch_sub(1, Relaxed);
      reg.free.push(base);
    }
  });
}

/// The JS array of the registry's chunk arrays (see `handlers::Handlers::data_slot`).
pub(crate) fn directory(env: Env) -> Option<Value> {
  let dir = REG.with(|r| r.try_borrow().ok()?.as_ref().filter(|reg| reg.env == env).map(|reg| reg.dir))?;
  js::deref(env, dir).ok()
}

impl Registry {
  /// The chunk array holding set `base` and the index of its slot there.
  fn locate(&self, env: Env, base: u32) -> Option<(Value, u32)> {
    let chunk = *self.chunks.get((base / CHUNK_SETS) as usize)?;
    Some((js::deref(env, chunk).ok()?, base % CHUNK_SETS))
  }
}

/// A free base for a new set, and where its slot is (chunk, index): a dropped set's, whose slot
/// the new array then replaces, else a cleared one, else a new one.
pub(crate) fn allocate(env: Env) -> Option<(u32, Value, u32)> {
  REG.with(|r| {
    let mut g = r.try_borrow_mut().ok()?;
    if g.is_none() {
      let mut dir = std::ptr::null_mut();
      js::check(unsafe { sys::napi_create_array(env, &mut dir) }).ok()?;
      let dir = js::reference(env, dir).ok()?;
      *g = Some(Registry { env, chunks: Vec::new(), dir, free: Vec::new(), dropped: Vec::new(), next: 0 });
    }
    let reg = g.as_mut()?;
    if reg.env != env {
      return None;
    }
    let reused = reg.dropped.pop();
    if reused.is_some() {
      UNSWEPT.fetch_sub(1, Relaxed);
    }
    let base = match reused.or_else(|| reg.free.pop()) {
      Some(b) => b,
      None => {
        if reg.next / CHUNK_SETS == reg.chunks.len() as u32 {
          // Full size at once, filled with `undefined`: exact capacity, packed fast elements.
          let src = js::string(env, &format!("new Array({}).fill(undefined)", CHUNK_SETS));
          let mut chunk = std::ptr::null_mut();
          js::check(unsafe { sys::napi_run_script(env, src, &mut chunk) }).ok()?;
          let dir = js::deref(env, reg.dir).ok()?;
          js::check(unsafe { sys::napi_set_element(env, dir, reg.chunks.len() as u32, chunk) }).ok()?;
          reg.chunks.push(js::reference(env, chunk).ok()?);
        }
        reg.next = reg.next.checked_add(1)?;
        reg.next - 1
      }
    };
    let (arr, first) = reg.locate(env, base)?;
    Some((base, arr, first))
  })
}

/// The chunk array holding set `base` and the index of its slot there.
pub(crate) fn locate(env: Env, base: u32) -> Option<(Value, u32)> {
  REG.with(|r| r.try_borrow().ok()?.as_ref()?.locate(env, base))
}

/// Set `base` was dropped: its slot is queued for [`sweep`]. No Node-API calls here (no handle
/// scope may be open). `try_with`: at thread exit the registry may already be gone (then so is
/// the environment).
pub(crate) fn release(base: u32) {
  let _ = REG.try_with(|r| {
    if let Ok(mut g) = r.try_borrow_mut() {
      if let Some(reg) = g.as_mut() {
        reg.dropped.push(base);
        UNSWEPT.fetch_add(1, Relaxed);
      }
    }
  });
}

/// Env teardown: forget the registry (the environment frees the arrays).
pub(crate) fn teardown() {
  REG.with(|r| {
    if let Ok(mut g) = r.try_borrow_mut() {
      if let Some(reg) = g.take() {
        UNSWEPT.fetch_sub(reg.dropped.len(), Relaxed);
      }
    }
  });
}
