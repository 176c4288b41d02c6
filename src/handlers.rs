//! The handler set (`SocketHandler`): read and validated once per `connect`/`listen`/`reload`,
//! kept as strong references, and shared by a listener with every socket it accepted.
//!
//! Sharing goes through a [`HandlerSlot`]: `listener.reload()` swaps the set inside the slot so
//! current and future server sockets see it at their next event (Bun's behaviour), while
//! `socket.reload()` gives that one socket a slot of its own.

use std::cell::RefCell;
use std::rc::Rc;

use napi::sys;

use crate::error::ArgError;
use crate::js::{self, Env, Value};

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

/// What `data` receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryType {
  Buffer,
  ArrayBuffer,
  Uint8Array,
}

pub(crate) struct Handlers {
  env: Env,
  fns: [sys::napi_ref; COUNT],
  pub binary_type: BinaryType,
}

/// The cell a listener shares with its sockets; see the module docs.
pub(crate) type HandlerSlot = Rc<RefCell<Rc<Handlers>>>;

thread_local! {
  /// The most recently created set, reused when the next call passes the same functions.
  static LAST: RefCell<Option<Rc<Handlers>>> = const { RefCell::new(None) };
}

/// Env teardown: forget the cached set (the environment frees its references).
pub(crate) fn teardown() {
  LAST.with(|l| {
    if let Ok(mut g) = l.try_borrow_mut() {
      if let Some(h) = g.take() {
        // The references die with the environment; do not touch them from Drop.
        if let Ok(mut h) = Rc::try_unwrap(h) {
          h.fns = [std::ptr::null_mut(); COUNT];
        }
      }
    }
  });
}

impl Handlers {
  /// Validates `socket` (the user's handler object) exactly as Bun does and takes references.
  /// `Err(None)` means a JS exception (from a getter) is already pending.
  ///
  /// Connections made with the same functions (the usual shared handler object) share one set:
  /// the values read now are compared with the previous set by identity, so semantics stay
  /// "read once per call" while thousands of sockets cost one set of references.
  pub(crate) fn from_js(env: Env, obj: Value) -> Result<Rc<Handlers>, Option<ArgError>> {
    use sys::ValueType as T;
    if !matches!(js::type_of(env, obj), T::napi_object | T::napi_function) {
      return Err(Some(ArgError::type_error("SocketHandler must be an object")));
    }
    let mut found: [Value; COUNT] = [std::ptr::null_mut(); COUNT];
    for (event, key, internal) in KEYS {
      let v = js::get(env, obj, key).map_err(|_| None)?;
      if !js::truthy(env, v) {
        continue;
      }
      if js::type_of(env, v) != T::napi_function {
        return Err(Some(ArgError::type_error(format!("Expected \"{internal}\" callback to be a function"))));
      }
      found[event as usize] = v;
    }
    if found[Event::Data as usize].is_null() && found[Event::Drain as usize].is_null() {
      return Err(Some(ArgError::type_error("Expected at least \"data\" or \"drain\" callback")));
    }
    let binary_type = parse_binary_type(env, js::get(env, obj, "binaryType").map_err(|_| None)?)?;
    if let Some(same) = LAST.with(|l| l.borrow().as_ref().filter(|h| h.same(binary_type, &found)).cloned()) {
      return Ok(same);
    }
    let mut fns = [std::ptr::null_mut(); COUNT];
    for (slot, f) in fns.iter_mut().zip(found) {
      if !f.is_null() {
        *slot = js::reference(env, f).map_err(|_| None)?;
      }
    }
    let h = Rc::new(Handlers { env, fns, binary_type });
    LAST.with(|l| *l.borrow_mut() = Some(h.clone()));
    Ok(h)
  }

  /// Whether this set holds exactly `found` (by identity) with `binary_type`.
  fn same(&self, binary_type: BinaryType, found: &[Value; COUNT]) -> bool {
    self.binary_type == binary_type
      && self.fns.iter().zip(found).all(|(r, f)| match (r.is_null(), f.is_null()) {
        (true, true) => true,
        (false, false) => js::deref(self.env, *r).is_ok_and(|v| js::strict_equals(self.env, v, *f)),
        _ => false,
      })
  }

  /// A set with no handlers (placeholder for closed stand-ins).
  pub(crate) fn empty() -> Rc<Handlers> {
    Rc::new(Handlers { env: std::ptr::null_mut(), fns: [std::ptr::null_mut(); COUNT], binary_type: BinaryType::Buffer })
  }

  pub(crate) fn has(&self, e: Event) -> bool {
    !self.fns[e as usize].is_null()
  }

  /// The handler function for `e`, if the user gave one.
  pub(crate) fn get(&self, e: Event) -> Option<Value> {
    let r = self.fns[e as usize];
    if r.is_null() {
      return None;
    }
    js::deref(self.env, r).ok()
  }
}

impl Drop for Handlers {
  fn drop(&mut self) {
    for r in self.fns {
      js::delete_reference(self.env, r);
    }
  }
}

fn parse_binary_type(env: Env, v: Value) -> Result<BinaryType, Option<ArgError>> {
  if js::is_undefined(env, v) {
    return Ok(BinaryType::Buffer);
  }
  if js::type_of(env, v) != sys::ValueType::napi_string {
    return Err(Some(ArgError::type_error("SocketHandler.binaryType must be a string")));
  }
  match js::get_string(env, v).as_deref() {
    Some("buffer") => Ok(BinaryType::Buffer),
    Some("arraybuffer") => Ok(BinaryType::ArrayBuffer),
    Some("uint8array") => Ok(BinaryType::Uint8Array),
    _ => Err(Some(ArgError::type_error(
      "SocketHandler.binaryType must be \"arraybuffer\", \"buffer\", or \"uint8array\"",
    ))),
  }
}

/// Reads the `socket` key of a `reload()` argument: the shared rules of `socket.reload` and
/// `listener.reload` (they differ only in the message for a missing key).
pub(crate) fn from_reload_arg(env: Env, arg: Option<Value>, missing_socket: &str) -> napi::Result<Rc<Handlers>> {
  let Some(arg) = arg else {
    return Err(ArgError::plain("Expected 1 argument").throw(env));
  };
  let socket = match js::type_of(env, arg) {
    sys::ValueType::napi_object | sys::ValueType::napi_function => js::get(env, arg, "socket").map_err(|_| crate::error::pending())?,
    _ => return Err(ArgError::plain(missing_socket).throw(env)),
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
