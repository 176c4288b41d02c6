//! "Is `a` the very object `b`?" without a Node-API call, where that can be shown to be safe.
//!
//! A socket method called from the socket's own handler checks that `this` is the socket the
//! handler was given (`socket::ThisHint`), and any other call checks that the object found through
//! the hidden index is `this` (`class.rs`): twice per `write()`; `connect()` compares its handler
//! array and functions with the previous set's (`handlers.rs`). `napi_strict_equals` is one of the
//! Node-API calls with the full preamble (a `v8::TryCatch` set up and torn down, the pending
//! exception and the environment's `can_call_into_js` checked) around a comparison of two words.
//!
//! On the Node versions this was built for, a `napi_value` is the address of a V8 handle slot, and
//! the slot holds the tagged address of the value: two handles name the same object exactly when
//! their slots hold the same word (V8's own `Local::operator==`). That is checked once per process
//! on real values before it is relied on: two handles of one object (read twice from a reference,
//! so two different slots) must hold the same word, and two objects different words, with
//! `napi_strict_equals` agreeing on both. If any check fails (a Node-API whose values are not
//! handle slots, such as V8's direct handles), every comparison goes through `napi_strict_equals`.
//!
//! Only objects are compared this way: for them identity is strict equality. The other operand
//! may be anything (`write.call(5)`): a Smi or another object's address never equals the object's.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::js::{self, Env, Value};

const UNKNOWN: u8 = 0;
const RAW: u8 = 1;
const NAPI: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether `obj` (an object) and `other` (any value) are the same value. Both must be values of a
/// handle scope that is still open (or arguments of the native call in progress), as for any
/// Node-API call.
#[inline]
pub(crate) fn same_object(env: Env, obj: Value, other: Value) -> bool {
  if obj.is_null() || other.is_null() {
    return false;
  }
  match MODE.load(Ordering::Relaxed) {
    // SAFETY: both are non-null values of an open scope (the caller's precondition); in RAW mode
    // such a value is the address of a slot that holds the value (checked by `probe`).
    RAW => unsafe { handle_word(obj) == handle_word(other) },
    NAPI => js::strict_equals(env, obj, other),
    _ => {
      // `BUNNET_STRICT_EQUALS=1` keeps the Node-API comparison (the tests run both).
      let mut mode = if std::env::var_os("BUNNET_STRICT_EQUALS").is_some_and(|v| v == "1") { NAPI } else { probe(env) };
      // The probe's values are handles; a method's `this` comes from the call's own arguments:
      // the first comparison is made both ways too.
      // SAFETY: as above; the probe found values to be slot addresses.
      if mode == RAW && unsafe { handle_word(obj) == handle_word(other) } != js::strict_equals(env, obj, other) {
        mode = NAPI;
      }
      crate::debug::debug!("identity: {}", if mode == RAW { "handle slots compared" } else { "napi_strict_equals" });
      MODE.store(mode, Ordering::Relaxed);
      same_object(env, obj, other)
    }
  }
}

/// The word a value's handle slot holds (RAW mode: the tagged address of the value).
unsafe fn handle_word(v: Value) -> usize {
  *(v as *const usize)
}

/// RAW if handles behave as slots holding the value's address (see the module docs), else NAPI.
fn probe(env: Env) -> u8 {
  let (a, b) = (js::object(env), js::object(env));
  let Ok(r) = js::reference(env, a) else { return NAPI };
  let (a1, a2) = (js::deref(env, r), js::deref(env, r));
  js::delete_reference(env, r);
  let (Ok(a1), Ok(a2)) = (a1, a2) else { return NAPI };
  if [a, b, a1, a2].iter().any(|v| v.is_null()) || a1 == a2 {
    return NAPI;
  }
  // SAFETY: non-null handles of this open scope; if they are not slot addresses (see above), the
  // word read is the first of a live object, still readable.
  let raw_same = unsafe { handle_word(a1) == handle_word(a2) && handle_word(a) == handle_word(a1) && handle_word(a) != handle_word(b) };
  let napi_same = js::strict_equals(env, a1, a2) && js::strict_equals(env, a, a1) && !js::strict_equals(env, a, b);
  if raw_same && napi_same {
    RAW
  } else {
    NAPI
  }
}
