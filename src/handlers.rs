//! The handler set (`SocketHandler`): read and validated once per `connect`/`listen`/`reload`,
//! kept alive in per-environment registry arrays, and shared by a listener with every socket it
//! accepted.
//!
//! Sharing goes through a [`HandlerSlot`]: `listener.reload()` swaps the set inside the slot so
//! current and future server sockets see it at their next event (Bun's behaviour), while
//! `socket.reload()` gives that one socket a slot of its own.

use std::cell::RefCell;
use std::rc::Rc;

use napi::sys;

use crate::error::ArgError;
use crate::js::{self, Env, Value};
use crate::registry::{allocate, CHUNK_SETS};

/// One JS handler, by the key the user wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
  Open = 0,
  Close,
  Data,
  Drain,
  Timeout,
  ConnectError,
  End,
  Error,
  Handshake,
}

const COUNT: usize = 9;
/// The mask bit by which `connect()`'s JS says it checked the objects and the handler types and
/// made the handler array (see [`Handlers::from_js_with`]).
pub(crate) const CHECKED: u32 = 1 << 16;
/// Set by `connect()`'s JS with [`CHECKED`] when the array it passes is one it just made (not
/// the previous call's): it cannot be the last set's array, so that comparison is skipped.
pub(crate) const FRESH: u32 = 1 << 19;
/// Set by `connect()`'s JS with [`CHECKED`] when `binaryType` is `undefined` (the default).
pub(crate) const BINARY_DEFAULT: u32 = 1 << 20;

/// (event, key in `SocketHandler`, Bun's internal name used in its error messages), in the order
/// Bun validates them.
const KEYS: [(Event, &str, &str); COUNT] = [
  (Event::Open, "open", "onOpen"),
  (Event::Close, "close", "onClose"),
  (Event::Data, "data", "onData"),
  (Event::Drain, "drain", "onWritable"),
  (Event::Timeout, "timeout", "onTimeout"),
  (Event::ConnectError, "connectError", "onConnectError"),
  (Event::End, "end", "onEnd"),
  (Event::Error, "error", "onError"),
  (Event::Handshake, "handshake", "onHandshake"),
];

/// The keys of `SocketHandler` read per handler set, in [`KEYS`] order, then `binaryType`.
pub(crate) const HANDLER_KEYS: [&str; COUNT + 1] = {
  let mut out = [""; COUNT + 1];
  let mut i = 0;
  while i < COUNT {
    out[i] = KEYS[i].1;
    i += 1;
  }
  out[COUNT] = "binaryType";
  out
};

/// What `data` receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryType {
  Buffer,
  ArrayBuffer,
  Uint8Array,
}

/// A handler set. The functions live in a JS array of `COUNT` (by [`Event`]), kept in a slot of
/// the per-environment registry (JS arrays, `registry`): fixed-size chunks of `CHUNK_SETS` slots,
/// set `base` owning slot `base`. A set therefore costs one small allocation here and a small
/// array in the JS heap, instead of one Node-API reference (a malloc'd record and a global
/// handle) per function: sockets connected with handler objects of their own
/// (`connect({ socket: { data() {} } })` makes new closures every call) stay small, and
/// `connect()`'s JS makes the array itself (one store here instead of one per function, and one
/// to release it). Chunks are allocated at full size once (no growth copies of one ever larger
/// array) and never freed; their slots are reused.
pub(crate) struct Handlers {
  /// Index of this set's slot in the registry; `u32::MAX` for the empty set.
  base: u32,
  /// Bit `e` set when handler `e` was given.
  mask: u16,
  pub binary_type: BinaryType,
}

/// The cell a listener shares with its sockets; see the module docs.
pub(crate) type HandlerSlot = Rc<RefCell<Rc<Handlers>>>;

pub(crate) use crate::handler_ref::HandlerRef;

thread_local! {
  /// The most recently created set, reused when the next call passes the same functions.
  static LAST: RefCell<Option<Rc<Handlers>>> = const { RefCell::new(None) };
  /// `connect()`'s JS cache of the last handler array it made (see [`js_cache`]).
  static JS_CACHE: std::cell::Cell<sys::napi_ref> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// The JS array `[handler array, binaryType]` in which `connect()`'s JS keeps the last array it
/// made (made once per environment). It must not outlive [`LAST`]'s hold on those functions:
/// [`forget_js_cache`] empties it whenever `LAST` becomes a set the JS did not make.
pub(crate) fn js_cache(env: Env) -> Option<Value> {
  let r = JS_CACHE.with(std::cell::Cell::get);
  if !r.is_null() {
    if let Ok(v) = js::deref(env, r) {
      return Some(v);
    }
  }
  let mut arr = std::ptr::null_mut();
  js::check(unsafe { sys::napi_create_array_with_length(env, 2, &mut arr) }).ok()?;
  JS_CACHE.with(|c| c.set(js::reference(env, arr).ok().unwrap_or(std::ptr::null_mut())));
  Some(arr)
}

/// Empties `connect()`'s JS cache (see [`js_cache`]).
fn forget_js_cache(env: Env) {
  let r = JS_CACHE.with(std::cell::Cell::get);
  if let (false, Ok(cache)) = (r.is_null(), js::deref(env, r)) {
    unsafe { sys::napi_set_element(env, cache, 0, js::undefined(env)) };
  }
}

/// Env teardown: forget the registry and the cached set (the environment frees the array).
pub(crate) fn teardown() {
  crate::registry::teardown();
  LAST.with(|l| {
    if let Ok(mut g) = l.try_borrow_mut() {
      *g = None;
    }
  });
  JS_CACHE.with(|c| c.set(std::ptr::null_mut()));
}

impl Handlers {
  /// Validates `socket` (the user's handler object) exactly as Bun does and keeps the functions.
  /// `Err(None)` means a JS exception (from a getter) is already pending.
  ///
  /// Connections made with the same functions (the usual shared handler object) share one set:
  /// the values read now are compared with the previous set by identity, so semantics stay
  /// "read once per call" while thousands of sockets cost one set.
  pub(crate) fn from_js(env: Env, obj: Value) -> Result<Rc<Handlers>, Option<ArgError>> {
    Self::from_js_with(env, obj, None, None)
  }

  /// [`Handlers::from_js`], with the values of [`HANDLER_KEYS`] already read from `obj` by JS
  /// when `pre` holds them (see `options::Preread`). `checked`: the handler array and mask that
  /// `connect()`'s JS made when it found every value a function, `undefined` or `null` (see
  /// [`prechecked`]); it passes the array of the previous call again when every value is the
  /// same, which this takes for the previous set.
  pub(crate) fn from_js_with(env: Env, obj: Value, pre: Option<&[Value]>, checked: Option<(Value, u16, u32)>) -> Result<Rc<Handlers>, Option<ArgError>> {
    if let Some((arr, mask, bits)) = checked {
      return Self::from_checked(env, arr, mask, bits, pre.and_then(|p| p.get(COUNT)).copied().ok_or(None)?);
    }
    use sys::ValueType as T;
    let mut array = false;
    unsafe { sys::napi_is_array(env, obj, &mut array) };
    if !matches!(js::type_of(env, obj), T::napi_object | T::napi_function) || array {
      return Err(Some(ArgError::type_error("SocketHandler must be an object")));
    }
    let read = |i: usize, key: &'static str| match pre {
      Some(vals) => vals.get(i).copied().ok_or(None),
      None => js::get(env, obj, key).map_err(|_| None),
    };
    let mut found: [Value; COUNT] = [std::ptr::null_mut(); COUNT];
    for (i, (event, key, internal)) in KEYS.into_iter().enumerate() {
      let v = read(i, key)?;
      // `undefined` and `null` count as absent; any other non-function (`false` and `0` too) is
      // refused, as in Bun.
      let t = js::type_of(env, v);
      if matches!(t, T::napi_undefined | T::napi_null) {
        continue;
      }
      if t != T::napi_function {
        return Err(Some(ArgError::type_error(format!("Expected \"{internal}\" callback to be a function"))));
      }
      found[event as usize] = v;
    }
    let mask = mask_of(&found);
    check_mask(mask)?;
    let binary_type = parse_binary_type(env, read(COUNT, "binaryType")?)?;
    if let Some(same) = LAST.with(|l| l.borrow().as_ref().filter(|h| h.same(env, binary_type, &found)).cloned()) {
      return Ok(same);
    }
    let mut arr = std::ptr::null_mut();
    js::check(unsafe { sys::napi_create_array_with_length(env, COUNT, &mut arr) }).map_err(|_| None)?;
    for (e, f) in found.iter().enumerate() {
      if !f.is_null() {
        js::check(unsafe { sys::napi_set_element(env, arr, e as u32, *f) }).map_err(|_| None)?;
      }
    }
    forget_js_cache(env);
    Self::store(env, arr, mask, binary_type)
  }

  /// The set for a handler array made and checked by `connect()`'s JS.
  /// `bits`: the JS's whole mask word ([`FRESH`], [`BINARY_DEFAULT`]).
  fn from_checked(env: Env, arr: Value, mask: u16, bits: u32, binary_type: Value) -> Result<Rc<Handlers>, Option<ArgError>> {
    // A refused set leaves nothing cached.
    let refused = |e| {
      forget_js_cache(env);
      e
    };
    check_mask(mask).map_err(refused)?;
    let binary_type = match bits & BINARY_DEFAULT {
      0 => parse_binary_type(env, binary_type).map_err(refused)?,
      _ => BinaryType::Buffer,
    };
    let last = match bits & FRESH {
      0 => LAST.with(|l| l.borrow().as_ref().filter(|h| h.mask == mask && h.binary_type == binary_type).cloned()),
      _ => None,
    };
    if let Some(last) = last.filter(|h| h.array(env).is_some_and(|a| js::strict_equals(env, a, arr))) {
      return Ok(last);
    }
    Self::store(env, arr, mask, binary_type)
  }

  /// Keeps `arr` (the functions of `mask`) in a free registry slot.
  fn store(env: Env, arr: Value, mask: u16, binary_type: BinaryType) -> Result<Rc<Handlers>, Option<ArgError>> {
    let (base, chunk, i) = allocate(env).ok_or(None)?;
    // From here on `h` owns the base: an early return hands it back through Drop.
    let h = Handlers { base, mask, binary_type };
    js::check(unsafe { sys::napi_set_element(env, chunk, i, arr) }).map_err(|_| None)?;
    let h = Rc::new(h);
    LAST.with(|l| *l.borrow_mut() = Some(h.clone()));
    Ok(h)
  }

  /// Whether this set holds exactly `found` (by identity) with `binary_type`.
  fn same(&self, env: Env, binary_type: BinaryType, found: &[Value; COUNT]) -> bool {
    if self.binary_type != binary_type || self.mask != mask_of(found) {
      return false;
    }
    let Some(arr) = self.array(env) else { return false };
    found.iter().enumerate().filter(|(_, f)| !f.is_null()).all(|(e, f)| js::element(env, arr, e as u32).is_some_and(|v| js::strict_equals(env, *f, v)))
  }

  /// Where the `data` handler's set is, if the handler is given: the registry chunk and the
  /// set's slot in it (the function is at [`DATA_INDEX`] there; for JS code that reads the
  /// function itself: element loads in JS are far cheaper than `napi_get_element`).
  pub(crate) fn data_place(&self, env: Env) -> Option<(Value, u32)> {
    if !self.has(Event::Data) {
      return None;
    }
    self.locate(env)
  }

  /// Where the `data` handler's set is, if the handler is given: its chunk's index in
  /// [`directory`] and its slot in that chunk (the function is at [`DATA_INDEX`] there).
  pub(crate) fn data_slot(&self) -> Option<(u32, u32)> {
    self.has(Event::Data).then_some((self.base / CHUNK_SETS, self.base % CHUNK_SETS))
  }

  /// This set's registry chunk and its slot there (the set's array of functions, by `Event`).
  pub(crate) fn locate(&self, env: Env) -> Option<(Value, u32)> {
    crate::registry::locate(env, self.base)
  }

  /// This set's array of functions.
  fn array(&self, env: Env) -> Option<Value> {
    let (chunk, i) = self.locate(env)?;
    js::element(env, chunk, i).filter(|v| !v.is_null())
  }

  /// A set with no handlers (placeholder for closed stand-ins).
  pub(crate) fn empty() -> Rc<Handlers> {
    Rc::new(Handlers { base: u32::MAX, mask: 0, binary_type: BinaryType::Buffer })
  }

  pub(crate) fn has(&self, e: Event) -> bool {
    self.mask & (1 << e as usize) != 0
  }
}

impl Drop for Handlers {
  fn drop(&mut self) {
    if self.base == u32::MAX {
      return;
    }
    crate::registry::release(self.base);
  }
}

/// The index of the `data` handler in a set's array.
pub(crate) const DATA_INDEX: u32 = Event::Data as u32;

/// The bits of the handlers given in `found` (by `Event`).
fn mask_of(found: &[Value; COUNT]) -> u16 {
  found.iter().enumerate().fold(0u16, |m, (e, f)| if f.is_null() { m } else { m | 1 << e })
}

/// Bun's check that a set can receive something.
fn check_mask(mask: u16) -> Result<(), Option<ArgError>> {
  if mask & (1 << Event::Data as u16 | 1 << Event::Drain as u16) == 0 {
    return Err(Some(ArgError::type_error("Expected at least \"data\" or \"drain\" callback")));
  }
  Ok(())
}

/// The handler array and mask that `connect()`'s JS passes after the handler values (see
/// [`Handlers::from_js_with`]), if it checked them (the mask carries [`CHECKED`]).
/// The third value is the whole mask word, whose bits above [`CHECKED`] say more about the call
/// (see `options::TARGET_RECORDED`).
pub(crate) fn prechecked(env: Env, pre: &[Value]) -> Option<(Value, u16, u32)> {
  let (arr, mask) = (*pre.get(COUNT + 1)?, *pre.get(COUNT + 2)?);
  let mut m = 0u32;
  js::check(unsafe { sys::napi_get_value_uint32(env, mask, &mut m) }).ok()?;
  (m & CHECKED != 0).then_some((arr, (m & ((1 << COUNT) - 1)) as u16, m))
}

fn parse_binary_type(env: Env, v: Value) -> Result<BinaryType, Option<ArgError>> {
  if js::is_undefined(env, v) {
    return Ok(BinaryType::Buffer);
  }
  if js::type_of(env, v) != sys::ValueType::napi_string {
    return Err(Some(ArgError::type_error("SocketHandler.binaryType must be a string")));
  }
  // Bun also takes the class names.
  match js::get_string(env, v).as_deref() {
    Some("buffer" | "Buffer") => Ok(BinaryType::Buffer),
    Some("arraybuffer" | "ArrayBuffer") => Ok(BinaryType::ArrayBuffer),
    Some("uint8array" | "Uint8Array") => Ok(BinaryType::Uint8Array),
    _ => Err(Some(ArgError::type_error("SocketHandler.binaryType must be \"arraybuffer\", \"buffer\", or \"uint8array\""))),
  }
}

/// Reads the `socket` key of a `reload()` argument: the shared rules of `socket.reload` and
/// `listener.reload` (they differ only in the message for a missing key).
/// `not_object`: Bun's error for an argument that is not an object (`undefined` included).
pub(crate) fn from_reload_arg(env: Env, arg: Option<Value>, not_object: ArgError, missing_socket: &str) -> napi::Result<Rc<Handlers>> {
  let Some(arg) = arg else {
    return Err(ArgError::plain("Expected 1 argument").throw(env));
  };
  let socket = match js::type_of(env, arg) {
    sys::ValueType::napi_object | sys::ValueType::napi_function => js::get(env, arg, "socket").map_err(|_| crate::error::pending())?,
    _ => return Err(not_object.throw(env)),
  };
  if js::is_undefined(env, socket) {
    return Err(ArgError::plain(missing_socket).throw(env));
  }
  Handlers::from_js(env, socket).map_err(|e| match e {
    Some(e) => e.throw(env),
    None => crate::error::pending(),
  })
}

/// Creates the value a `data` handler receives, copying `bytes` once.
pub(crate) fn data_value(env: Env, bt: BinaryType, bytes: &[u8]) -> Value {
  let mut out = std::ptr::null_mut();
  unsafe {
    match bt {
      BinaryType::Buffer => {
        let mut p = std::ptr::null_mut();
        sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut p, &mut out);
      }
      BinaryType::ArrayBuffer | BinaryType::Uint8Array => {
        let Some((ab, p)) = js::arraybuffer_uninit(env, bytes.len()) else { return js::undefined(env) };
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        if bt == BinaryType::ArrayBuffer {
          out = ab;
        } else {
          sys::napi_create_typedarray(env, sys::TypedarrayType::uint8_array, bytes.len(), ab, 0, &mut out);
        }
      }
    }
  }
  if out.is_null() {
    js::undefined(env)
  } else {
    out
  }
}
