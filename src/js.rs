//! Thin, checked wrappers over the raw Node-API calls the reactor makes on its hot paths.
//!
//! The reactor calls JS from a libuv callback, where napi-rs's typed `Env`/`Object` wrappers
//! would only add lifetimes and allocations. Everything here is a one-liner around `napi_*`
//! that turns a failed status into `Err(Status)` so callers can bail out with `?` (never panic:
//! during worker teardown most calls start failing and that must stay harmless).

use std::os::raw::c_char;
use std::ptr;

use napi::sys;

pub(crate) type Env = sys::napi_env;
pub(crate) type Value = sys::napi_value;

/// A Node-API call failed (typically because the environment is shutting down).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failed;

pub(crate) type JsResult<T> = Result<T, Failed>;

#[inline]
pub(crate) fn check(status: sys::napi_status) -> JsResult<()> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(Failed)
  }
}

pub(crate) fn undefined(env: Env) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_get_undefined(env, &mut v) };
  v
}

pub(crate) fn null(env: Env) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_get_null(env, &mut v) };
  v
}

pub(crate) fn boolean(env: Env, b: bool) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_get_boolean(env, b, &mut v) };
  v
}

/// A `Buffer` holding a copy of `bytes`.
pub(crate) fn buffer(env: Env, bytes: &[u8]) -> Value {
  let mut v = ptr::null_mut();
  let mut p = ptr::null_mut();
  unsafe { sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut p, &mut v) };
  v
}

/// A new `len`-byte ArrayBuffer whose memory is not zero-filled (Node allocates a Buffer's
/// backing store without the zero fill `napi_create_arraybuffer` does): the caller writes it
/// before any JS can see it. `None` when allocation fails.
pub(crate) fn arraybuffer_uninit(env: Env, len: usize) -> Option<(Value, *mut u8)> {
  let (mut buf, mut p) = (ptr::null_mut(), ptr::null_mut());
  if unsafe { sys::napi_create_buffer(env, len, &mut p, &mut buf) } != sys::Status::napi_ok || buf.is_null() {
    return None;
  }
  let (mut ty, mut n, mut data, mut ab, mut off) = (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
  unsafe { sys::napi_get_typedarray_info(env, buf, &mut ty, &mut n, &mut data, &mut ab, &mut off) };
  if ab.is_null() || off != 0 || data.is_null() {
    return None;
  }
  Some((ab, data.cast()))
}

/// A small non-negative integer (a V8 Smi: no heap number, no double conversion).
pub(crate) fn uint(env: Env, n: u32) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_create_uint32(env, n, &mut v) };
  v
}

pub(crate) fn number(env: Env, n: f64) -> Value {
  let mut v = ptr::null_mut();
  // Integral values that fit (byte counts, ports, states: nearly every result) as an int32, which
  // V8 turns into a Smi inline; `v8::Number::New` enters the VM state first (~1.6 % of user time
  // in ping-pong, for `write()`'s return value). Same JS value either way (-0 stays a double).
  if n.fract() == 0.0 && n >= i32::MIN as f64 && n <= i32::MAX as f64 && !(n == 0.0 && n.is_sign_negative()) {
    unsafe { sys::napi_create_int32(env, n as i32, &mut v) };
  } else {
    unsafe { sys::napi_create_double(env, n, &mut v) };
  }
  v
}

pub(crate) fn string(env: Env, s: &str) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast::<c_char>(), s.len() as isize, &mut v) };
  v
}

pub(crate) fn global(env: Env) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_get_global(env, &mut v) };
  v
}

pub(crate) fn object(env: Env) -> Value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_create_object(env, &mut v) };
  v
}

pub(crate) fn type_of(env: Env, v: Value) -> sys::napi_valuetype {
  let mut t = 0;
  if unsafe { sys::napi_typeof(env, v, &mut t) } != sys::Status::napi_ok {
    return sys::ValueType::napi_undefined;
  }
  t
}

pub(crate) fn is_undefined(env: Env, v: Value) -> bool {
  v.is_null() || type_of(env, v) == sys::ValueType::napi_undefined
}

/// A hasher for addresses and small integers (multiplicative, Fx-style): the std SipHash costs
/// more than the lookups it serves on the hot paths here.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
  fn finish(&self) -> u64 {
    // The product's high bits are the well-mixed ones; hashbrown indexes with the low bits.
    self.0.rotate_left(26)
  }
  fn write(&mut self, bytes: &[u8]) {
    for b in bytes {
      self.write_u64(u64::from(*b));
    }
  }
  fn write_u64(&mut self, n: u64) {
    self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
  }
  fn write_usize(&mut self, n: usize) {
    self.write_u64(n as u64);
  }
}

type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<AddrHasher>>;

/// Property-key strings, made once per environment (thread) and kept in one JS array.
///
/// A key made with `napi_create_string_utf8` for every lookup costs a UTF-8 decode, an allocation
/// and a string-table lookup (V8 hashes and internalizes it) each time: ~3 % of all cycles of
/// connection churn, where `connect()` reads ~25 options. A kept key string is internalized once
/// (V8 turns it into a thin string pointing at the internalized one) and found directly after.
/// Node-API 9 cannot reference a string, hence the array.
struct Keys {
  env: Env,
  array: sys::napi_ref,
  /// Index in `array` by the key's address and length (`&'static str`: literals; a literal that
  /// appears twice may get two entries, which is harmless).
  index: FastMap<(usize, usize), u32>,
}

thread_local! {
  static KEYS: std::cell::RefCell<Option<Keys>> = const { std::cell::RefCell::new(None) };
}

/// Env teardown: forget the key array (the environment frees it).
pub(crate) fn teardown_keys() {
  KEYS.with(|k| {
    if let Ok(mut g) = k.try_borrow_mut() {
      *g = None;
    }
  });
}

/// The property key `key` (falls back to a fresh string if the cache is unavailable).
pub(crate) fn key(env: Env, key: &'static str) -> Value {
  cached(env, (key.as_ptr() as usize, key.len()), || string(env, key)).unwrap_or_else(|| string(env, key))
}

/// The value kept under `id` in this environment's key array, made by `make` the first time.
fn cached(env: Env, id: (usize, usize), make: impl FnOnce() -> Value) -> Option<Value> {
  KEYS.with(|k| {
    let mut g = k.try_borrow_mut().ok()?;
    if g.as_ref().is_some_and(|c| c.env != env) {
      return None;
    }
    if g.is_none() {
      let mut arr = ptr::null_mut();
      check(unsafe { sys::napi_create_array(env, &mut arr) }).ok()?;
      *g = Some(Keys { env, array: reference(env, arr).ok()?, index: FastMap::default() });
    }
    let c = g.as_mut()?;
    let arr = deref(env, c.array).ok()?;
    let v = match c.index.get(&id) {
      Some(&i) => element(env, arr, i)?,
      None => {
        let i = u32::try_from(c.index.len()).ok()?;
        let v = make();
        if v.is_null() {
          return None;
        }
        check(unsafe { sys::napi_set_element(env, arr, i, v) }).ok()?;
        c.index.insert(id, i);
        v
      }
    };
    (!v.is_null()).then_some(v)
  })
}

pub(crate) fn get(env: Env, obj: Value, key: &'static str) -> JsResult<Value> {
  let mut v = ptr::null_mut();
  let k = self::key(env, key);
  check(unsafe { sys::napi_get_property(env, obj, k, &mut v) })?;
  Ok(v)
}

/// `arr[i]` (`None` if the read throws).
pub(crate) fn element(env: Env, arr: Value, i: u32) -> Option<Value> {
  let mut v = ptr::null_mut();
  check(unsafe { sys::napi_get_element(env, arr, i, &mut v) }).ok()?;
  Some(v)
}

pub(crate) fn set(env: Env, obj: Value, key: &'static str, value: Value) -> JsResult<()> {
  let k = self::key(env, key);
  check(unsafe { sys::napi_set_property(env, obj, k, value) })
}

/// Whether `obj` has an own property `key`.
pub(crate) fn has_own(env: Env, obj: Value, key: &'static str) -> bool {
  let mut yes = false;
  let st = unsafe { sys::napi_has_own_property(env, obj, self::key(env, key), &mut yes) };
  st == sys::Status::napi_ok && yes
}

/// Defines a non-enumerable, writable, configurable data property.
pub(crate) fn define_hidden(env: Env, obj: Value, key: &str, value: Value) -> JsResult<()> {
  let k = string(env, key);
  let desc = sys::napi_property_descriptor {
    utf8name: ptr::null(),
    name: k,
    method: None,
    getter: None,
    setter: None,
    value,
    attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
    data: ptr::null_mut(),
  };
  check(unsafe { sys::napi_define_properties(env, obj, 1, &desc) })
}

pub(crate) fn get_f64(env: Env, v: Value) -> Option<f64> {
  let mut n = 0.0;
  (unsafe { sys::napi_get_value_double(env, v, &mut n) } == sys::Status::napi_ok).then_some(n)
}

pub(crate) fn get_bool(env: Env, v: Value) -> Option<bool> {
  let mut b = false;
  (unsafe { sys::napi_get_value_bool(env, v, &mut b) } == sys::Status::napi_ok).then_some(b)
}

/// `!!v` with JS truthiness.
pub(crate) fn truthy(env: Env, v: Value) -> bool {
  let mut b = ptr::null_mut();
  if unsafe { sys::napi_coerce_to_bool(env, v, &mut b) } != sys::Status::napi_ok {
    return false;
  }
  get_bool(env, b).unwrap_or(false)
}

/// `Number(v)`; `None` if the coercion threw (the exception is left pending).
pub(crate) fn to_number(env: Env, v: Value) -> Option<f64> {
  let mut n = ptr::null_mut();
  if unsafe { sys::napi_coerce_to_number(env, v, &mut n) } != sys::Status::napi_ok {
    return None;
  }
  get_f64(env, n)
}

/// `Number(v)` for a BigInt `v` (`None` for anything else), rounded as a double holds it.
pub(crate) fn bigint_f64(env: Env, v: Value) -> Option<f64> {
  if type_of(env, v) != sys::ValueType::napi_bigint {
    return None;
  }
  // 16 words reach past f64::MAX (2^1024): a longer BigInt is an infinity, read no further.
  let mut words = [0u64; 16];
  let (mut sign, mut count) = (0i32, words.len());
  check(unsafe { sys::napi_get_value_bigint_words(env, v, &mut sign, &mut count, words.as_mut_ptr()) }).ok()?;
  let magnitude = match words.get(..count) {
    Some(used) => used.iter().rev().fold(0.0, |acc, w| acc * 18_446_744_073_709_551_616.0 + *w as f64),
    None => f64::INFINITY,
  };
  Some(if sign != 0 { -magnitude } else { magnitude })
}

/// `String(v)`; `None` if the coercion threw (the exception is left pending).
pub(crate) fn to_string(env: Env, v: Value) -> Option<String> {
  let mut s = ptr::null_mut();
  if unsafe { sys::napi_coerce_to_string(env, v, &mut s) } != sys::Status::napi_ok {
    return None;
  }
  get_string(env, s)
}

/// Reads a JS string value as UTF-8.
pub(crate) fn get_string(env: Env, v: Value) -> Option<String> {
  let mut len = 0usize;
  if unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) } != sys::Status::napi_ok {
    return None;
  }
  let mut buf = vec![0u8; len + 1];
  let mut written = 0usize;
  if unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast::<c_char>(), len + 1, &mut written) } != sys::Status::napi_ok {
    return None;
  }
  buf.truncate(written);
  String::from_utf8(buf).ok()
}

pub(crate) fn strict_equals(env: Env, a: Value, b: Value) -> bool {
  let mut r = false;
  unsafe { sys::napi_strict_equals(env, a, b, &mut r) };
  r
}

/// A JS function named `name` that calls the native callback `cb`.
pub(crate) fn native_function(env: Env, name: &str, cb: unsafe extern "C" fn(Env, sys::napi_callback_info) -> Value) -> JsResult<Value> {
  let mut f = ptr::null_mut();
  check(unsafe { sys::napi_create_function(env, name.as_ptr().cast(), name.len() as isize, Some(cb), ptr::null_mut(), &mut f) })?;
  Ok(f)
}

/// Runs `src`, a script whose value is a function, and returns what that function returns when
/// called with `args`: how the JS trampolines are made (what they capture comes in as `args`).
pub(crate) fn from_script(env: Env, src: &str, args: &[Value]) -> JsResult<Value> {
  let mut maker = ptr::null_mut();
  check(unsafe { sys::napi_run_script(env, string(env, src), &mut maker) })?;
  let mut made = ptr::null_mut();
  check(unsafe { sys::napi_call_function(env, undefined(env), maker, args.len(), args.as_ptr(), &mut made) })?;
  Ok(made)
}

/// Creates a strong reference (count 1) to an object or function.
pub(crate) fn reference(env: Env, v: Value) -> JsResult<sys::napi_ref> {
  let mut r = ptr::null_mut();
  check(unsafe { sys::napi_create_reference(env, v, 1, &mut r) })?;
  Ok(r)
}

pub(crate) fn deref(env: Env, r: sys::napi_ref) -> JsResult<Value> {
  let mut v = ptr::null_mut();
  check(unsafe { sys::napi_get_reference_value(env, r, &mut v) })?;
  if v.is_null() {
    return Err(Failed);
  }
  Ok(v)
}

pub(crate) fn delete_reference(env: Env, r: sys::napi_ref) {
  if !r.is_null() {
    unsafe { sys::napi_delete_reference(env, r) };
  }
}

pub(crate) use crate::calls::*;

/// Whether a JS exception is pending.
pub(crate) fn exception_pending(env: Env) -> bool {
  let mut pending = false;
  unsafe { sys::napi_is_exception_pending(env, &mut pending) };
  pending
}

/// Clears and returns the pending exception, if any.
pub(crate) fn take_exception(env: Env) -> Option<Value> {
  if !exception_pending(env) {
    return None;
  }
  let mut e = ptr::null_mut();
  if unsafe { sys::napi_get_and_clear_last_exception(env, &mut e) } != sys::Status::napi_ok {
    return None;
  }
  Some(e)
}

pub(crate) fn is_error(env: Env, v: Value) -> bool {
  let mut r = false;
  unsafe { sys::napi_is_error(env, v, &mut r) };
  r
}

/// Reports an exception as Node does for an uncaught error in a callback (`uncaughtException`).
pub(crate) fn fatal_exception(env: Env, e: Value) {
  unsafe { sys::napi_fatal_exception(env, e) };
}

/// RAII handle scope: values created inside are released when it drops.
pub(crate) struct HandleScope {
  env: Env,
  scope: sys::napi_handle_scope,
}

impl HandleScope {
  pub(crate) fn open(env: Env) -> Self {
    let mut scope = ptr::null_mut();
    unsafe { sys::napi_open_handle_scope(env, &mut scope) };
    HandleScope { env, scope }
  }
}

impl Drop for HandleScope {
  fn drop(&mut self) {
    if !self.scope.is_null() {
      unsafe { sys::napi_close_handle_scope(self.env, self.scope) };
    }
  }
}

/// RAII callback scope: closing it runs `process.nextTick` callbacks and promise jobs queued by
/// the handlers that ran inside, as `MakeCallback` does for Node's own I/O callbacks.
pub(crate) struct CallbackScope {
  env: Env,
  scope: sys::napi_callback_scope,
}

impl CallbackScope {
  pub(crate) fn open(env: Env, resource: Value, ctx: sys::napi_async_context) -> Self {
    let mut scope = ptr::null_mut();
    unsafe { sys::napi_open_callback_scope(env, resource, ctx, &mut scope) };
    CallbackScope { env, scope }
  }
}

impl Drop for CallbackScope {
  fn drop(&mut self) {
    if !self.scope.is_null() {
      unsafe { sys::napi_close_callback_scope(self.env, self.scope) };
    }
  }
}

/// A raw JS value returned from a `#[napi]` method as is.
pub struct Raw(pub(crate) Value);

impl napi::bindgen_prelude::ToNapiValue for Raw {
  unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    Ok(val.0)
  }
}

impl napi::bindgen_prelude::TypeName for Raw {
  fn type_name() -> &'static str {
    "unknown"
  }
  fn value_type() -> napi::ValueType {
    napi::ValueType::Unknown
  }
}
