//! Turning `write(data, byteOffset?, byteLength?)` arguments into a byte slice, with Bun's
//! validation rules and messages (spec §4.3), without copying binary inputs.

use std::cell::RefCell;

use napi::sys;

use crate::error::{describe_received, ArgError};
use crate::js::{self, Env, Value};
use crate::options::js_number;

const MAX_SAFE: &str = "9007199254740991";

thread_local! {
  /// Scratch space for UTF-8 encoding of string writes (reused, never shrinks below 64 KiB).
  static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(64 * 1024));
}

/// Why the arguments were not turned into bytes.
pub(crate) enum BadBytes {
  Arg(ArgError),
  /// A JS exception (from a getter or coercion) is already pending.
  Pending,
}

impl BadBytes {
  pub(crate) fn throw(self, env: Env) -> napi::Error {
    match self {
      BadBytes::Arg(e) => e.throw(env),
      BadBytes::Pending => crate::error::pending(),
    }
  }
}

/// Runs `f` with the bytes `data[offset..offset+length]` describes; `Ok(None)` when `data` is
/// `undefined` (nothing to send). Binary inputs are borrowed from the JS heap for the duration of
/// the call; strings are encoded once into a reused scratch buffer.
pub(crate) fn with_bytes<R>(env: Env, data: Value, offset: Option<Value>, length: Option<Value>, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, BadBytes> {
  use sys::ValueType as T;
  // `write(data, encoding)`, as Bun and `node:net` take it: a string second argument with no
  // length after it is an encoding (only strings have one). With a length it stays a bad offset
  // (Bun throws a `TODOError` there, spec Q21).
  let encoding = offset.filter(|o| js::type_of(env, *o) == T::napi_string && length.map_or(true, |l| js::is_undefined(env, l)));
  let given = (offset, length);
  let (offset, length) = if encoding.is_some() { (None, None) } else { (offset, length) };
  // Fast path for the common case (Buffer / Uint8Array): one call tells both "is a view" and
  // where its bytes are, with no element-type chain (~100 instructions less than the typed-array
  // info). Node 20's buffer info takes any ArrayBufferView (byte length); newer Node versions take
  // only Uint8Arrays there, and other views go through `binary_view` below.
  let (mut len, mut p) = (0usize, std::ptr::null_mut());
  if unsafe { sys::napi_get_buffer_info(env, data, &mut p, &mut len) } == sys::Status::napi_ok {
    let range = slice_range(env, len, offset, length)?;
    if len == 0 || p.is_null() {
      return Ok(Some(f(&[])));
    }
    // SAFETY: as below: the live backing store of an argument of the current call.
    let all = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    return Ok(Some(f(&all[range])));
  }
  match js::type_of(env, data) {
    T::napi_undefined => Ok(None),
    T::napi_string if encoding.is_some() => encoded(env, data, encoding, f),
    T::napi_string => SCRATCH.with(|cell| {
      // A reentrant call cannot happen (nothing here runs JS), but stay panic-free regardless.
      let mut fallback = Vec::new();
      let mut guard = cell.try_borrow_mut();
      let buf: &mut Vec<u8> = match guard.as_mut() {
        Ok(b) => b,
        Err(_) => &mut fallback,
      };
      encode_utf8(env, data, buf)?;
      let range = slice_range(env, buf.len(), offset, length)?;
      Ok(Some(f(&buf[range])))
    }),
    T::napi_object => {
      let Some((ptr, len)) = binary_view(env, data) else {
        if !string_object(env, data) {
          return Err(BadBytes::Arg(invalid_data(env, data)));
        }
        // `new String("...")` writes its string, as in Bun.
        let mut s = std::ptr::null_mut();
        js::check(unsafe { sys::napi_coerce_to_string(env, data, &mut s) }).map_err(|_| BadBytes::Pending)?;
        return with_bytes(env, s, given.0, given.1, f);
      };
      let range = slice_range(env, len, offset, length)?;
      if len == 0 || ptr.is_null() {
        return Ok(Some(f(&[])));
      }
      // SAFETY: `ptr..ptr+len` is the live backing store of a JS view/buffer that stays
      // reachable (it is an argument of the current call) and no JS runs while `f` does.
      let all = unsafe { std::slice::from_raw_parts(ptr, len) };
      Ok(Some(f(&all[range])))
    }
    _ => Err(BadBytes::Arg(invalid_data(env, data))),
  }
}

/// The bytes of `data` in `encoding` (`Buffer.from(data, encoding)`: hex, base64, base64url,
/// latin1/binary, ascii, ucs2/utf16le, utf8); an encoding Node does not know means UTF-8, as in
/// Bun.
fn encoded<R>(env: Env, data: Value, encoding: Option<Value>, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, BadBytes> {
  const OTHERS: [&str; 10] = ["hex", "base64", "base64url", "latin1", "binary", "ascii", "ucs2", "ucs-2", "utf16le", "utf-16le"];
  let name = encoding.and_then(|e| js::get_string(env, e)).unwrap_or_default().to_ascii_lowercase();
  if !OTHERS.contains(&name.as_str()) {
    // UTF-8, named or not: the usual path, no Buffer made.
    return with_bytes(env, data, None, None, f);
  }
  // What the global `Buffer` gives; a replaced one that throws is reported as its throw, one that
  // returns no bytes as a TypeError (never a silent `undefined`).
  let failed = || {
    if js::exception_pending(env) {
      BadBytes::Pending
    } else {
      BadBytes::Arg(ArgError::type_error(format!("Buffer.from(string, \"{name}\") gave no bytes")))
    }
  };
  let buffer = js::get(env, js::global(env), "Buffer").map_err(|_| failed())?;
  let from = js::get(env, buffer, "from").map_err(|_| failed())?;
  let args = [data, js::string(env, &name)];
  let mut bytes = std::ptr::null_mut();
  js::check(unsafe { sys::napi_call_function(env, buffer, from, 2, args.as_ptr(), &mut bytes) }).map_err(|_| failed())?;
  let (p, n) = binary_view(env, bytes).ok_or_else(failed)?;
  // SAFETY: the live backing store of the Buffer just made, which `bytes` keeps reachable; no
  // JS runs while `f` does.
  Ok(Some(f(if p.is_null() { &[] } else { unsafe { std::slice::from_raw_parts(p, n) } })))
}

/// Whether `v` is a `String` wrapper object (`new String(...)`).
fn string_object(env: Env, v: Value) -> bool {
  let Ok(ctor) = js::get(env, js::global(env), "String") else { return false };
  let mut yes = false;
  let st = unsafe { sys::napi_instanceof(env, v, ctor, &mut yes) };
  st == sys::Status::napi_ok && yes
}

fn invalid_data(env: Env, data: Value) -> ArgError {
  ArgError::type_error(format!("The \"data\" argument must be of type string, buffer, or blob. {}", describe_received(env, data)))
}

fn encode_utf8(env: Env, s: Value, buf: &mut Vec<u8>) -> Result<(), BadBytes> {
  let mut len = 0usize;
  js::check(unsafe { sys::napi_get_value_string_utf8(env, s, std::ptr::null_mut(), 0, &mut len) }).map_err(|_| BadBytes::Pending)?;
  buf.clear();
  buf.resize(len + 1, 0);
  let mut written = 0usize;
  js::check(unsafe { sys::napi_get_value_string_utf8(env, s, buf.as_mut_ptr().cast(), len + 1, &mut written) }).map_err(|_| BadBytes::Pending)?;
  buf.truncate(written);
  Ok(())
}

/// A copy of the bytes of a string (UTF-8) or binary value; `None` for anything else. For
/// options that take "string, Buffer or TypedArray" (PEM, ALPN, sessions, keying context).
pub(crate) fn string_or_binary(env: Env, v: Value) -> Option<Vec<u8>> {
  if js::type_of(env, v) == sys::ValueType::napi_string {
    return Some(js::get_string(env, v).unwrap_or_default().into_bytes());
  }
  let (p, n) = binary_view(env, v)?;
  // SAFETY: a live view of a JS buffer, copied before any JS runs.
  Some(if p.is_null() { Vec::new() } else { unsafe { std::slice::from_raw_parts(p, n) }.to_vec() })
}

/// Pointer and byte length of a Buffer/TypedArray/DataView/ArrayBuffer/SharedArrayBuffer.
pub(crate) fn binary_view(env: Env, v: Value) -> Option<(*const u8, usize)> {
  let mut yes = false;
  unsafe {
    sys::napi_is_typedarray(env, v, &mut yes);
    if yes {
      let (mut ty, mut n, mut data, mut ab, mut off) = (0, 0usize, std::ptr::null_mut(), std::ptr::null_mut(), 0usize);
      if sys::napi_get_typedarray_info(env, v, &mut ty, &mut n, &mut data, &mut ab, &mut off) != sys::Status::napi_ok {
        return None;
      }
      return Some((data.cast::<u8>(), n * element_size(ty)));
    }
    sys::napi_is_dataview(env, v, &mut yes);
    if yes {
      let (mut n, mut data, mut ab, mut off) = (0usize, std::ptr::null_mut(), std::ptr::null_mut(), 0usize);
      if sys::napi_get_dataview_info(env, v, &mut n, &mut data, &mut ab, &mut off) != sys::Status::napi_ok {
        return None;
      }
      return Some((data.cast::<u8>(), n));
    }
    sys::napi_is_arraybuffer(env, v, &mut yes);
    if yes {
      let (mut data, mut n) = (std::ptr::null_mut(), 0usize);
      if sys::napi_get_arraybuffer_info(env, v, &mut data, &mut n) != sys::Status::napi_ok {
        return None;
      }
      return Some((data.cast::<u8>(), n));
    }
  }
  shared_array_buffer(env, v)
}

/// Node-API has no SharedArrayBuffer accessors before Node 22: view it through a `Uint8Array`.
fn shared_array_buffer(env: Env, v: Value) -> Option<(*const u8, usize)> {
  let mut global = std::ptr::null_mut();
  unsafe { sys::napi_get_global(env, &mut global) };
  let sab = js::get(env, global, "SharedArrayBuffer").ok()?;
  let mut is = false;
  unsafe { sys::napi_instanceof(env, v, sab, &mut is) };
  if !is {
    js::take_exception(env);
    return None;
  }
  let u8ctor = js::get(env, global, "Uint8Array").ok()?;
  let mut view = std::ptr::null_mut();
  if unsafe { sys::napi_new_instance(env, u8ctor, 1, &v, &mut view) } != sys::Status::napi_ok {
    js::take_exception(env);
    return None;
  }
  let (mut ty, mut n, mut data, mut ab, mut off) = (0, 0usize, std::ptr::null_mut(), std::ptr::null_mut(), 0usize);
  if unsafe { sys::napi_get_typedarray_info(env, view, &mut ty, &mut n, &mut data, &mut ab, &mut off) } != sys::Status::napi_ok {
    return None;
  }
  Some((data.cast::<u8>(), n))
}

fn element_size(ty: sys::napi_typedarray_type) -> usize {
  use sys::TypedarrayType as A;
  match ty {
    A::int16_array | A::uint16_array => 2,
    A::int32_array | A::uint32_array | A::float32_array => 4,
    A::float64_array | A::bigint64_array | A::biguint64_array => 8,
    _ => 1,
  }
}

/// Validates `byteOffset`/`byteLength` against `total` bytes. A missing length means "the rest
/// after the offset" (bunnet's deliberate fix of Bun's RangeError, README "Deliberate fixes").
fn slice_range(env: Env, total: usize, offset: Option<Value>, length: Option<Value>) -> Result<std::ops::Range<usize>, BadBytes> {
  if offset.is_none() && length.is_none() {
    return Ok(0..total);
  }
  let off = integer_arg(env, offset, "byteOffset")?.unwrap_or(0.0);
  if off < 0.0 {
    return Err(BadBytes::Arg(out_of_range("byteOffset", MAX_SAFE, off)));
  }
  if off > total as f64 {
    return Err(BadBytes::Arg(out_of_range("byteOffset", &total.to_string(), off)));
  }
  let off = off as usize;
  let rest = total - off;
  let len = match integer_arg(env, length, "byteLength")? {
    None => rest,
    Some(l) if l < 0.0 => return Err(BadBytes::Arg(out_of_range("byteLength", MAX_SAFE, l))),
    Some(l) if l > rest as f64 => return Err(BadBytes::Arg(out_of_range("byteLength", &rest.to_string(), l))),
    Some(l) => l as usize,
  };
  Ok(off..off + len)
}

fn integer_arg(env: Env, v: Option<Value>, name: &str) -> Result<Option<f64>, BadBytes> {
  let Some(v) = v.filter(|v| !js::is_undefined(env, *v)) else { return Ok(None) };
  let n = (js::type_of(env, v) == sys::ValueType::napi_number).then(|| js::get_f64(env, v)).flatten();
  // JSC's "any int" (Bun's check): an integral double in [-2^51, 2^51), and not -0.
  const INT52: f64 = 2_251_799_813_685_248.0;
  match n {
    Some(n) if n.fract() == 0.0 && (-INT52..INT52).contains(&n) && !(n == 0.0 && n.is_sign_negative()) => Ok(Some(n)),
    _ => Err(BadBytes::Arg(ArgError::type_error(format!("Expected {name} to be a integer for 'Socket.write'.")))),
  }
}

fn out_of_range(name: &str, max: &str, got: f64) -> ArgError {
  ArgError::range_error(format!("The value of \"{name}\" is out of range. It must be >= 0 and <= {max}. Received {}", js_number(got)))
}
