//! The JS classes (`Socket`, `SocketListener`) on raw Node-API, kept as light as a handle can be.
//!
//! Why not `#[napi]` classes: every instance there costs an extra global reference, a registry
//! entry and a finalizer trampoline, and every method call a class-identity lookup and a borrow
//! guard. A socket object here is one JS object with one hidden property and one finalizer
//! reference (which doubles as the reactor's: strong while the socket is open, weak after); a
//! method call is one `napi_get_cb_info`, one property read, a table lookup and an identity
//! check. This matters for connection churn, memory per connection and the cost of `write()`.
//!
//! Identity: the object carries its index in [`TABLE`] (the values this module made and whose
//! finalizer has not run, by address and class) under a per-environment symbol, as a
//! non-writable, non-enumerable, non-configurable small integer. A method only uses the value at
//! that index when the value's own reference leads back to the very object it was called on, so
//! a forged or inherited index (`Object.create(socket)`) is refused. Compared with `napi_wrap`,
//! there is no `External` object per instance (32 bytes of JS heap), no check for an existing
//! wrap, and no set of live addresses beside the table; compared with a Node-API type tag, no
//! per-object BigInt.
//!
//! Methods and getters are plain Rust functions `fn(&T, &Ctx) -> Result<Value>` passed to a single
//! generic callback through the property's `data` pointer. Panics are caught and turned into a JS
//! `Error` (none is expected: the code has no unwrap; this is the last line of defence).

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
  /// The native value behind `this` found without a property lookup, when the class can tell
  /// (see `socket::ThisHint`); `None` falls back to the lookup.
  fn hinted<'a>(_env: Env, _this: Value) -> Option<&'a Self> {
    None
  }
  /// Where the native value keeps its own reference to its object (filled right after
  /// instantiation; the finalizer deletes it).
  fn wrap_cell(&self) -> &Cell<sys::napi_ref>;
}

thread_local! {
  /// Every native value made by [`instantiate`] and not yet finalized, as address + `KIND`.
  static TABLE: RefCell<Table> = const { RefCell::new(Table { slots: Vec::new(), free: Vec::new() }) };
  /// The table index of the last value found through its object's property (see [`recent`]).
  static LAST: Cell<u32> = const { Cell::new(u32::MAX) };
  /// Per class (`KIND`): the object the JS constructor wants as its first argument (see [`define`]).
  static TOKENS: [Cell<sys::napi_ref>; 8] = const { [const { Cell::new(ptr::null_mut()) }; 8] };
}

/// The JS constructor of a class: instances are made in JS, where defining the hidden index and
/// `data` costs less than a native constructor callback plus `napi_define_properties` (which
/// allocates a descriptor per property and takes V8's generic define path): ~0.75 µs less user
/// time per connection in churn. The prototype is a plain object with the native methods and
/// getters (`napi_define_class` methods carry a V8 receiver signature that objects made by a JS
/// constructor fail), and only bunnet holds `token`: `new Socket()` from JS is refused.
/// `Object.defineProperty` is taken once, and what user code does to `Object.prototype` later
/// cannot reach the index or make creation throw: each descriptor states all three attributes
/// itself, and one that meets an inherited `get` or `set` (a throw, nothing defined) is retried
/// without a prototype. Not that one first: a descriptor without a prototype is a dictionary-mode
/// object, and defining through it cost ~25 B more per idle socket (mem-server 364 -> 388 B; one
/// descriptor object reused for every socket cost as much).
/// `data` is defined, not assigned, so no setter or frozen prototype is involved.
const CONSTRUCTOR_JS: &str = r#"(function (proto, sym, name) {
  'use strict'
  const token = {}
  const define = Object.defineProperty
  const C = function (t, i, data) {
    if (t !== token) {
      const e = new TypeError('Illegal constructor')
      e.code = 'ERR_ILLEGAL_CONSTRUCTOR'
      throw e
    }
    try { define(this, sym, { value: i, writable: false, enumerable: false, configurable: false }) } catch { define(this, sym, { __proto__: null, value: i }) }
    if (data !== undefined) {
      try { define(this, 'data', { value: data, writable: true, enumerable: true, configurable: true }) } catch { define(this, 'data', { __proto__: null, value: data, writable: true, enumerable: true, configurable: true }) }
    }
  }
  define(C, 'name', { value: name })
  define(C, 'length', { value: 0 })
  C.prototype = proto
  define(proto, 'constructor', { value: C, writable: true, configurable: true })
  return [C, token]
})"#;

/// Slots of live native values (0: free); an object's hidden property holds its index.
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
        let i = u32::try_from(self.slots.len()).ok().filter(|i| *i <= i32::MAX as u32)?;
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

/// Whether `p`'s object is `this` (its reference yields nothing once the object is collected).
unsafe fn is_own<T: Class>(env: Env, p: *const T, this: Value) -> bool {
  let Ok(obj) = js::deref(env, (*p).wrap_cell().get()) else { return false };
  crate::identity::same_object(env, obj, this)
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

/// The native value behind `this`, if `this` really is an instance of `T` (see the module docs).
unsafe fn lookup<'a, T: Class>(env: Env, this: Value) -> Option<(&'a T, u32)> {
  if js::type_of(env, this) != sys::ValueType::napi_object {
    return None;
  }
  let mut v = ptr::null_mut();
  if sys::napi_get_property(env, this, js::hidden_symbol(env)?, &mut v) != sys::Status::napi_ok {
    return None;
  }
  let mut i = 0u32;
  if sys::napi_get_value_uint32(env, v, &mut i) != sys::Status::napi_ok {
    return None;
  }
  let p = slot::<T>(i)?;
  is_own(env, p, this).then(|| (&*p, i))
}

/// The value found by the last lookup, if `this` is its object: a loop of `s.write()` outside
/// any handler pays one table read, one reference read and one identity check per call instead
/// of a property lookup through the V8 runtime. The index is only followed while its slot holds a
/// value of this class (not finalized), and that value's reference must lead back to `this`.
unsafe fn recent<'a, T: Class>(env: Env, this: Value) -> Option<&'a T> {
  let p = slot::<T>(LAST.with(Cell::get))?;
  is_own(env, p, this).then(|| &*p)
}

unsafe extern "C" fn call<T: Class>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let mut ctx = Ctx { env, this: ptr::null_mut(), argc: 3, args: [ptr::null_mut(); 3] };
  let mut data = ptr::null_mut();
  if sys::napi_get_cb_info(env, info, &mut ctx.argc, ctx.args.as_mut_ptr(), &mut ctx.this, &mut data) != sys::Status::napi_ok {
    return ptr::null_mut();
  }
  let found = T::hinted(env, ctx.this).or_else(|| recent::<T>(env, ctx.this)).or_else(|| {
    let (v, i) = lookup::<T>(env, ctx.this)?;
    LAST.with(|l| l.set(i));
    Some(v)
  });
  let Some(obj) = found else {
    ArgError::type_error(format!("Illegal invocation: `this` is not a {}", T::NAME)).throw(env);
    return ptr::null_mut();
  };
  // SAFETY: `data` is the `Method<T>` this callback was registered with in `define`.
  let f: Method<T> = std::mem::transmute::<*mut c_void, Method<T>>(data);
  finish(env, catch_unwind(AssertUnwindSafe(|| f(obj, &ctx))))
}

/// The end of a native call from JS: handler sets dropped by it (a close) release their functions
/// now, with a scope open; an error or a caught panic is thrown.
pub(crate) fn finish(env: Env, result: std::thread::Result<napi::Result<Value>>) -> sys::napi_value {
  crate::handlers::sweep(env);
  match result {
    Ok(Ok(v)) => v,
    Ok(Err(e)) => {
      throw_error(env, &e);
      ptr::null_mut()
    }
    Err(_) => {
      ArgError::plain("bunnet: internal error (caught panic)").throw(env);
      ptr::null_mut()
    }
  }
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
  let prop = |name: &str, method: Option<Method<T>>, getter: Option<Method<T>>| sys::napi_property_descriptor {
    utf8name: ptr::null(),
    name: js::string(env, name),
    method: method.map(|_| call::<T> as unsafe extern "C" fn(_, _) -> _),
    getter: getter.map(|_| call::<T> as unsafe extern "C" fn(_, _) -> _),
    setter: None,
    value: ptr::null_mut(),
    attributes: if method.is_some() {
      sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable
    } else {
      sys::PropertyAttributes::configurable
    },
    data: method.or(getter).map_or(ptr::null_mut(), |f| f as *mut c_void),
  };
  // `data` on the prototype: `undefined` until an instance gets its own (see `instantiate`).
  let data = sys::napi_property_descriptor {
    value: js::undefined(env),
    attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
    ..prop("data", None, None)
  };
  let props: Vec<_> = T::METHODS
    .iter()
    .chain(T::MORE_METHODS.iter())
    .map(|(n, f)| prop(n, Some(*f), None))
    .chain(T::GETTERS.iter().map(|(n, f)| prop(n, None, Some(*f))))
    .chain(std::iter::once(data))
    .collect();
  let proto = js::object(env);
  js::check(unsafe { sys::napi_define_properties(env, proto, props.len(), props.as_ptr()) }).map_err(|_| crate::error::pending())?;
  let sym = js::hidden_symbol(env).ok_or_else(crate::error::pending)?;
  let made = js::from_script(env, CONSTRUCTOR_JS, &[proto, sym, js::string(env, T::NAME)]).map_err(|_| crate::error::pending())?;
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
  // The constructor stores the index under the hidden symbol (non-writable, non-enumerable,
  // non-configurable) and `data` only when given: otherwise reads find the prototype's
  // `undefined` (as Bun's `Object.keys(socket)` is empty) and the first assignment makes it own.
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
