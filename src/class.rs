//! The JS classes (`Socket`, `SocketListener`) on raw Node-API, kept as light as a handle can be.
//!
//! Why not `#[napi]` classes: every instance there costs an extra global reference, a registry
//! entry and a finalizer trampoline, and every method call a class-identity lookup and a borrow
//! guard. A socket object here is one JS object with one private field and one finalizer
//! reference (which doubles as the reactor's: strong while the socket is open, weak after); a
//! method call is a small JS member that reads the field, one `napi_get_cb_info`, one number and
//! a table read. This matters for connection churn, memory per connection and the cost of
//! `write()`.
//!
//! Identity: the object carries its index in [`TABLE`] (the values this module made and whose
//! finalizer has not run, by address and class) in a private field of its class (see
//! [`class_source`]), which only the class's own constructor can add: a forged, copied or
//! inherited receiver (`Object.create(socket)`) has none and is refused. Compared with
//! `napi_wrap`, there is no `External` object per instance (32 bytes of JS heap), no check for an
//! existing wrap, no private-symbol lookup through the V8 runtime per call, and no set of live
//! addresses beside the table; compared with a Node-API type tag, no per-object BigInt.
//!
//! Methods and getters are plain Rust functions `fn(&T, &Ctx) -> Result<Value>`, each behind a
//! native function whose `data` pointer it is, all with one generic callback. Panics are caught
//! and turned into a JS `Error` (none is expected: the code has no unwrap; this is the last line
//! of defence).

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::sys;

use crate::error::ArgError;
use crate::js::{self, Env, Value};

/// The arguments of one method call (up to three; missing ones read as `undefined`).
pub(crate) struct Ctx {
  pub env: Env,
  pub this: Value,
  pub argc: usize,
  args: [Value; 3],
}

impl Ctx {
  pub(crate) fn arg(&self, i: usize) -> Value {
    match self.args.get(i) {
      Some(v) if i < self.argc && !v.is_null() => *v,
      _ => js::undefined(self.env),
    }
  }
  /// Argument `i` if the caller passed it (`None` when missing; a passed `undefined` is `Some`).
  pub(crate) fn opt(&self, i: usize) -> Option<Value> {
    self.args.get(i).copied().filter(|v| i < self.argc && !v.is_null())
  }
  pub(crate) fn undefined(&self) -> napi::Result<Value> {
    Ok(js::undefined(self.env))
  }
  pub(crate) fn null(&self) -> napi::Result<Value> {
    Ok(js::null(self.env))
  }
  pub(crate) fn number(&self, n: f64) -> napi::Result<Value> {
    Ok(js::number(self.env, n))
  }
  pub(crate) fn boolean(&self, b: bool) -> napi::Result<Value> {
    Ok(js::boolean(self.env, b))
  }
  pub(crate) fn string(&self, s: &str) -> napi::Result<Value> {
    Ok(js::string(self.env, s))
  }
}

pub(crate) type Method<T> = fn(&T, &Ctx) -> napi::Result<Value>;

/// A Rust type exposed as a JS class.
pub(crate) trait Class: Sized + 'static {
  const NAME: &'static str;
  /// Distinguishes the classes in [`TABLE`] (1..=7: added to an 8-aligned address).
  const KIND: usize;
  const METHODS: &'static [(&'static str, Method<Self>)];
  const GETTERS: &'static [(&'static str, Method<Self>)];
  /// More methods, defined in another module (the TLS members of `Socket`).
  const MORE_METHODS: &'static [(&'static str, Method<Self>)] = &[];
  /// Where this env's constructor reference lives.
  fn ctor_slot() -> &'static std::thread::LocalKey<Cell<sys::napi_ref>>;
  /// Where the native value keeps its own reference to its object (filled right after
  /// instantiation; the finalizer deletes it).
  fn wrap_cell(&self) -> &Cell<sys::napi_ref>;
}

thread_local! {
  /// Every native value made by [`instantiate`] and not yet finalized, as address + `KIND`.
  static TABLE: RefCell<Table> = const { RefCell::new(Table { slots: Vec::new(), free: Vec::new() }) };
  /// Per class (`KIND`): the object the JS constructor wants as its first argument (see [`define`]).
  static TOKENS: [Cell<sys::napi_ref>; 8] = const { [const { Cell::new(ptr::null_mut()) }; 8] };
}

/// The JS side of a class, made once per environment by [`class_source`]: the constructor, and
/// a prototype whose members are small JS methods and getters that call their native function
/// with the receiver's table index.
///
/// The index is a private field (`#i`) of each instance, stamped on by the constructor through a
/// class whose base constructor returns the object it is given. A private field cannot be read,
/// written, forged or inherited by any other code (`Object.create(socket)` has none), shows in no
/// key list or spread, and is defined on a fast path (~15 ns against ~130 ns for the
/// `Object.defineProperty` of a hidden symbol it replaces: unix churn 5.8-6.6 -> 5.3-5.8 µs of
/// user time per connection, two sockets each). So a method call needs no lookup of its receiver at all: the member reads `#i` (or
/// finds none: `-1`, "Illegal invocation") and passes it with its argument count (`index * 4 +
/// min(argc, 3)`), the receiver and up to three arguments.
///
/// The constructor is a plain function (so that calling it without `new` gets the same refusal)
/// and only bunnet holds `token`: `new Socket()` from JS is refused. `data`, when given, is
/// defined as an own property by a class field (define semantics: no setter, frozen prototype or
/// `Object.prototype` key is involved, and no descriptor object is made). The prototype's own
/// `[[Prototype]]` is `Object.prototype`, as for a plain object.
fn class_source(members: &[(&str, bool)]) -> Option<String> {
  use std::fmt::Write;
  // The natives come in as parameters (an array would be filled by `[[Set]]`, which a setter on
  // `Array.prototype` installed before bunnet loads could watch), and `Brand` is never handed to
  // anything: `P.constructor` is deleted (an operator) before the first call of a global, so
  // that a replaced `Object.defineProperty` or `Object.setPrototypeOf` cannot stamp a foreign
  // object with an index.
  let mut s = String::from("(function (name");
  for i in 0..members.len() {
    write!(s, ", f{i}").ok()?;
  }
  s.push_str(") {\n'use strict'\nconst token = {}\n");
  s.push_str("class Stamp { constructor(o) { return o } }\nlet pending\nclass Data extends Stamp { data = pending }\n");
  s.push_str("class Brand extends Stamp {\n#i\nconstructor(o, i) { super(o); this.#i = i }\n");
  let key = |argc: &str| format!("(typeof this === 'object' && this !== null && #i in this ? this.#i * 4 + ({argc} < 3 ? {argc} : 3) : -1)");
  for (i, (name, getter)) in members.iter().enumerate() {
    let ident = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && name.chars().all(|c| c.is_ascii_alphanumeric());
    if !ident {
      return None;
    }
    if *getter {
      writeln!(s, "get {name}() {{ return f{i}(this, {}) }}", key("0")).ok()?;
    } else {
      writeln!(s, "{name}(a, b, c) {{ return f{i}(this, {}, a, b, c) }}", key("arguments.length")).ok()?;
    }
  }
  s.push_str(
    "}\nconst P = Brand.prototype\ndelete P.constructor\n\
     const define = Object.defineProperty\n\
     Object.setPrototypeOf(P, Object.prototype)\n\
     const C = function (t, i, data) {\n\
       if (t !== token) { const e = new TypeError('Illegal constructor'); e.code = 'ERR_ILLEGAL_CONSTRUCTOR'; throw e }\n\
       new Brand(this, i)\n\
       if (data !== undefined) { pending = data; try { new Data(this) } finally { pending = undefined } }\n\
     }\n\
     define(C, 'name', { __proto__: null, value: name })\n\
     define(C, 'length', { __proto__: null, value: 0 })\n\
     C.prototype = P\n\
     define(P, 'constructor', { __proto__: null, value: C, writable: true, configurable: true })\n\
     define(P, 'data', { __proto__: null, value: undefined, writable: true, configurable: true })\n\
     return [C, token]\n})",
  );
  Some(s)
}

/// Slots of live native values (0: free); an object's private field holds its index.
struct Table {
  slots: Vec<usize>,
  free: Vec<u32>,
}

impl Table {
  fn insert(&mut self, key: usize) -> Option<u32> {
    match self.free.pop() {
      Some(i) => {
        *self.slots.get_mut(i as usize)? = key;
        Some(i)
      }
      None => {
        let i = u32::try_from(self.slots.len()).ok().filter(|i| *i <= (i32::MAX >> 2) as u32)?;
        self.slots.push(key);
        Some(i)
      }
    }
  }

  fn remove(&mut self, i: u32, key: usize) {
    if let Some(slot) = self.slots.get_mut(i as usize).filter(|k| **k == key) {
      *slot = 0;
      self.free.push(i);
    }
  }
}

/// The value `T` at table index `i`, if that slot holds one.
fn slot<T: Class>(i: u32) -> Option<*const T> {
  let key = TABLE.with(|t| t.try_borrow().ok().and_then(|t| t.slots.get(i as usize).copied()))?;
  (key != 0 && key & 7 == T::KIND & 7).then(|| (key - (T::KIND & 7)) as *const T)
}

/// `KIND` goes in the low bits, below the alignment of the boxed value: keys never collide.
fn live_key<T: Class>(p: *const T) -> usize {
  const { assert!(std::mem::align_of::<T>() >= 8) };
  p as usize + (T::KIND & 7)
}

fn throw_error(env: Env, e: &napi::Error) {
  if e.status != napi::Status::PendingException {
    ArgError::plain(format!("bunnet: {}", e.reason)).throw(env);
  }
}

/// A method's native side. JS passes the receiver, its key (see [`class_source`]: `-1` when the
/// receiver has no `#i` of this class) and three arguments (`undefined` when not given).
unsafe extern "C" fn call<T: Class>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  member::<T, 5>(env, info)
}

/// A getter's native side: JS passes the receiver and its key only. Asking for exactly those
/// spares Node-API filling three missing ones with `undefined`, which took ~20 ns of a ~55 ns
/// getter call (`readyState`, this VM).
unsafe extern "C" fn get<T: Class>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  member::<T, 2>(env, info)
}

#[inline(always)]
unsafe fn member<T: Class, const N: usize>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let mut argv = [ptr::null_mut(); N];
  let mut argc = N;
  let mut data = ptr::null_mut();
  if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), &mut data) != sys::Status::napi_ok {
    return ptr::null_mut();
  }
  let at = |i: usize| argv.get(i).copied().unwrap_or(ptr::null_mut());
  let (this, key, a, b, c) = (at(0), at(1), at(2), at(3), at(4));
  let mut k = -1i32;
  if argc < 2 || sys::napi_get_value_int32(env, key, &mut k) != sys::Status::napi_ok {
    k = -1;
  }
  // SAFETY: only the object that owns slot `k >> 2` carries that index in `#i`, and while it can
  // be called its finalizer (which empties the slot) has not run.
  let found = u32::try_from(k).ok().and_then(|k| slot::<T>(k >> 2)).map(|p| &*p);
  let Some(obj) = found else {
    ArgError::type_error(format!("Illegal invocation: `this` is not a {}", T::NAME)).throw(env);
    return ptr::null_mut();
  };
  let ctx = Ctx { env, this, argc: (k & 3) as usize, args: [a, b, c] };
  // SAFETY: `data` is the `Method<T>` this callback was registered with in `define`.
  let f: Method<T> = std::mem::transmute::<*mut c_void, Method<T>>(data);
  // Only a pointer crosses the unwind boundary: the method's `Result` (an error is large) is
  // settled inside it.
  catch_unwind(AssertUnwindSafe(|| settle(env, f(obj, &ctx)))).unwrap_or_else(|_| panicked(env))
}

/// The end of a native call from JS: handler sets dropped by it (a close) release their functions
/// now, with a scope open; an error or a caught panic is thrown.
pub(crate) fn finish(env: Env, result: std::thread::Result<napi::Result<Value>>) -> sys::napi_value {
  match result {
    Ok(r) => settle(env, r),
    Err(_) => panicked(env),
  }
}

/// A call's result as its return value, or thrown; dropped handler sets are swept first (a sweep
/// cannot run with an exception pending).
#[inline(always)]
fn settle(env: Env, result: napi::Result<Value>) -> sys::napi_value {
  crate::registry::sweep(env);
  result.unwrap_or_else(|e| {
    throw_error(env, &e);
    ptr::null_mut()
  })
}

/// A caught panic, thrown as an internal error after the sweep.
fn panicked(env: Env) -> sys::napi_value {
  crate::registry::sweep(env);
  ArgError::plain("bunnet: internal error (caught panic)").throw(env);
  ptr::null_mut()
}

unsafe extern "C" fn finalize<T: Class>(env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
  if data.is_null() {
    return;
  }
  let p = data.cast::<T>();
  // `hint` is the table index. `try_with`: at thread exit the table may be gone already.
  let _ = TABLE.try_with(|t| t.try_borrow_mut().map(|mut t| t.remove(hint as usize as u32, live_key(p))));
  let obj = Box::from_raw(p);
  js::delete_reference(env, obj.wrap_cell().get());
}

/// Defines the class `T` in this environment (once) and returns its constructor.
pub(crate) fn define<T: Class>(env: Env) -> napi::Result<Value> {
  let existing = T::ctor_slot().with(Cell::get);
  if !existing.is_null() {
    if let Ok(c) = js::deref(env, existing) {
      return Ok(c);
    }
  }
  let members: Vec<(&str, Method<T>, bool)> =
    T::METHODS.iter().chain(T::MORE_METHODS.iter()).map(|(n, f)| (*n, *f, false)).chain(T::GETTERS.iter().map(|(n, f)| (*n, *f, true))).collect();
  let mut args = vec![js::string(env, T::NAME)];
  for (name, f, getter) in &members {
    let mut native = ptr::null_mut();
    // SAFETY: `call::<T>` reads `data` back as the `Method<T>` it is.
    let cb = if *getter { get::<T> } else { call::<T> };
    let st = unsafe { sys::napi_create_function(env, name.as_ptr().cast(), name.len() as isize, Some(cb), *f as *mut c_void, &mut native) };
    js::check(st).map_err(|_| crate::error::pending())?;
    args.push(native);
  }
  let names: Vec<(&str, bool)> = members.iter().map(|(n, _, getter)| (*n, *getter)).collect();
  let src = class_source(&names).ok_or_else(crate::error::pending)?;
  let made = js::from_script(env, &src, &args).map_err(|_| crate::error::pending())?;
  let (ctor, token) = (js::element(env, made, 0), js::element(env, made, 1));
  let (Some(ctor), Some(token)) = (ctor, token) else { return Err(crate::error::pending()) };
  let token = js::reference(env, token).map_err(|_| crate::error::pending())?;
  TOKENS.with(|t| t.get(T::KIND & 7).map(|c| c.set(token)));
  let r = js::reference(env, ctor).map_err(|_| crate::error::pending())?;
  T::ctor_slot().with(|c| c.set(r));
  Ok(ctor)
}

/// Creates a JS instance wrapping `value`, with `data` as its `data` property; returns the object,
/// its wrap reference and the native value's address. The reference is taken strong (count 1):
/// the caller lowers it with `napi_reference_unref` once the object no longer needs to be kept
/// alive natively, and the finalizer deletes it.
pub(crate) fn instantiate<T: Class>(env: Env, value: T, data: Value) -> napi::Result<(Value, sys::napi_ref, *const T)> {
  let ctor = define::<T>(env)?;
  let token = TOKENS.with(|t| t.get(T::KIND & 7).map(Cell::get)).and_then(|r| js::deref(env, r).ok()).ok_or_else(crate::error::pending)?;
  let boxed = Box::into_raw(Box::new(value));
  // No borrow of the table spans a call out, so these cannot fail on a borrow.
  let index = TABLE.with(|t| t.try_borrow_mut().ok().and_then(|mut t| t.insert(live_key(boxed))));
  let Some(index) = index else {
    // SAFETY: not handed to Node-API yet.
    drop(unsafe { Box::from_raw(boxed) });
    return Err(crate::error::pending());
  };
  // The constructor stores the index in the private field, and `data` only when given: otherwise
  // reads find the prototype's `undefined` (as Bun's `Object.keys(socket)` is empty) and the
  // first assignment makes it own.
  let argv = [token, js::uint(env, index), data];
  let mut obj = ptr::null_mut();
  let st = unsafe { sys::napi_new_instance(env, ctor, argv.len(), argv.as_ptr(), &mut obj) };
  let mut wrap = ptr::null_mut();
  let st = if st == sys::Status::napi_ok {
    unsafe { sys::napi_add_finalizer(env, obj, boxed.cast(), Some(finalize::<T>), index as usize as *mut c_void, &mut wrap) }
  } else {
    st
  };
  if st != sys::Status::napi_ok {
    TABLE.with(|t| t.try_borrow_mut().map(|mut t| t.remove(index, live_key(boxed)))).ok();
    // SAFETY: no finalizer was attached, so the box is still ours.
    drop(unsafe { Box::from_raw(boxed) });
    return Err(crate::error::pending());
  }
  // SAFETY: `boxed` is alive until the finalizer runs, which cannot happen while we hold `obj`.
  unsafe { (*boxed).wrap_cell().set(wrap) };
  unsafe { sys::napi_reference_ref(env, wrap, ptr::null_mut()) };
  Ok((obj, wrap, boxed))
}

/// Makes a wrap reference weak again (the object may now be collected; its finalizer deletes the
/// reference).
pub(crate) fn release(env: Env, wrap: sys::napi_ref) {
  if !wrap.is_null() {
    unsafe { sys::napi_reference_unref(env, wrap, ptr::null_mut()) };
  }
}
