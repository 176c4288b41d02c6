//! Errors as JS sees them.
//!
//! Two families, kept apart as Node and Bun keep them apart:
//! - argument errors ([`throw`]): a synchronous `TypeError`/`RangeError`/`Error` with Bun's exact
//!   message and, where Bun sets one, its `code` (`ERR_INVALID_ARG_TYPE`, `ERR_OUT_OF_RANGE`);
//! - system errors ([`SysError`]): Node-shaped `Error`s with `code` (the errno name), `errno`
//!   (negated OS number, Node's convention everywhere, see README "Deliberate fixes"), `syscall`,
//!   and `address`/`port`/`hostname` where they apply.

use std::io;

use napi::sys;

use crate::js::{self, Env, Value};

/// The JS class of an argument error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
  Type,
  Range,
  Plain,
}

pub(crate) const INVALID_ARG_TYPE: &str = "ERR_INVALID_ARG_TYPE";
pub(crate) const OUT_OF_RANGE: &str = "ERR_OUT_OF_RANGE";

/// An argument error not yet thrown: validation code builds these without touching JS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError {
  pub class: Class,
  pub code: Option<&'static str>,
  pub message: String,
}

impl ArgError {
  pub(crate) fn type_error(message: impl Into<String>) -> Self {
    ArgError { class: Class::Type, code: Some(INVALID_ARG_TYPE), message: message.into() }
  }
  pub(crate) fn range_error(message: impl Into<String>) -> Self {
    ArgError { class: Class::Range, code: Some(OUT_OF_RANGE), message: message.into() }
  }
  pub(crate) fn plain(message: impl Into<String>) -> Self {
    ArgError { class: Class::Plain, code: None, message: message.into() }
  }
  pub(crate) fn with_code(mut self, code: &'static str) -> Self {
    self.code = Some(code);
    self
  }

  pub(crate) fn to_js(&self, env: Env) -> Value {
    let msg = js::string(env, &self.message);
    let code = match self.code {
      Some(c) => js::string(env, c),
      None => std::ptr::null_mut(),
    };
    let mut e = std::ptr::null_mut();
    unsafe {
      match self.class {
        Class::Type => sys::napi_create_type_error(env, code, msg, &mut e),
        Class::Range => sys::napi_create_range_error(env, code, msg, &mut e),
        Class::Plain => sys::napi_create_error(env, code, msg, &mut e),
      }
    };
    e
  }

  /// Throws into JS and returns the marker error that tells napi-rs an exception is pending.
  pub(crate) fn throw(&self, env: Env) -> napi::Error {
    throw_value(env, self.to_js(env))
  }
}

/// Throws `value` and returns the napi-rs error that leaves it pending (not re-thrown).
pub(crate) fn throw_value(env: Env, value: Value) -> napi::Error {
  unsafe { sys::napi_throw(env, value) };
  napi::Error::new(napi::Status::PendingException, String::new())
}

/// Marker for "a JS exception is already pending".
pub(crate) fn pending() -> napi::Error {
  napi::Error::new(napi::Status::PendingException, String::new())
}

/// Node's errno names and libuv's descriptions for the errors sockets meet.
fn errno_info(errno: i32) -> (&'static str, &'static str) {
  match errno {
    libc::ECONNREFUSED => ("ECONNREFUSED", "connection refused"),
    libc::ECONNRESET => ("ECONNRESET", "connection reset by peer"),
    libc::ENOENT => ("ENOENT", "no such file or directory"),
    libc::EADDRINUSE => ("EADDRINUSE", "address already in use"),
    libc::EADDRNOTAVAIL => ("EADDRNOTAVAIL", "address not available"),
    libc::EINVAL => ("EINVAL", "invalid argument"),
    libc::EACCES => ("EACCES", "permission denied"),
    libc::EPERM => ("EPERM", "operation not permitted"),
    libc::ETIMEDOUT => ("ETIMEDOUT", "connection timed out"),
    libc::EHOSTUNREACH => ("EHOSTUNREACH", "host is unreachable"),
    libc::ENETUNREACH => ("ENETUNREACH", "network is unreachable"),
    libc::EPIPE => ("EPIPE", "broken pipe"),
    libc::ECONNABORTED => ("ECONNABORTED", "software caused connection abort"),
    libc::EAFNOSUPPORT => ("EAFNOSUPPORT", "address family not supported"),
    libc::EMFILE => ("EMFILE", "too many open files"),
    libc::ENFILE => ("ENFILE", "file table overflow"),
    libc::ENOBUFS => ("ENOBUFS", "no buffer space available"),
    libc::ENOMEM => ("ENOMEM", "not enough memory"),
    libc::ENOTCONN => ("ENOTCONN", "socket is not connected"),
    libc::ENAMETOOLONG => ("ENAMETOOLONG", "name too long"),
    libc::ENOTDIR => ("ENOTDIR", "not a directory"),
    libc::ENOTSOCK => ("ENOTSOCK", "socket operation on non-socket"),
    libc::EPROTO => ("EPROTO", "protocol error"),
    libc::EBADF => ("EBADF", "bad file descriptor"),
    libc::EHOSTDOWN => ("EHOSTDOWN", "host is down"),
    libc::ENETDOWN => ("ENETDOWN", "network is down"),
    libc::EEXIST => ("EEXIST", "file already exists"),
    libc::EAGAIN => ("EAGAIN", "resource temporarily unavailable"),
    libc::EPROTONOSUPPORT => ("EPROTONOSUPPORT", "protocol not supported"),
    _ => ("UNKNOWN", "unknown error"),
  }
}

/// Node's `UV_EAI_NONAME`: the errno Node reports for `ENOTFOUND`.
pub(crate) const EAI_NONAME: i32 = -3008;

/// A Node-shaped system error, built in Rust and turned into a JS `Error` on the JS thread.
#[derive(Debug, Clone)]
pub(crate) struct SysError {
  pub code: &'static str,
  pub errno: i32,
  pub syscall: &'static str,
  pub message: String,
  pub address: Option<String>,
  pub port: Option<u16>,
  pub hostname: Option<String>,
  /// Bun's connect errors carry only `code`/`syscall`/`errno` as own enumerable keys; bunnet adds
  /// `address`/`port` for debugging but keeps them non-enumerable so the shape still matches.
  pub hide_location: bool,
}

impl SysError {
  pub(crate) fn from_io(err: &io::Error, syscall: &'static str) -> Self {
    let os = err.raw_os_error().unwrap_or(libc::EIO);
    let (code, desc) = errno_info(os);
    SysError {
      code,
      errno: -os,
      syscall,
      message: format!("{code}: {desc}, {syscall}"),
      address: None,
      port: None,
      hostname: None,
      hide_location: false,
    }
  }

  /// The error `connectError`/the connect promise receive (Bun: message "Failed to connect").
  pub(crate) fn connect(err: &io::Error, address: Option<String>, port: Option<u16>) -> Self {
    let mut e = SysError::from_io(err, "connect");
    e.message = "Failed to connect".to_string();
    e.address = address;
    e.port = port;
    e.hide_location = true;
    e
  }

  /// A failed `listen()` (Bun: "Failed to listen at <host or path>").
  pub(crate) fn listen(err: &io::Error, address: &str, port: Option<u16>) -> Self {
    let mut e = SysError::from_io(err, "listen");
    e.message = format!("Failed to listen at {address}");
    e.address = Some(address.to_string());
    e.port = port;
    e
  }

  /// A name that did not resolve.
  pub(crate) fn not_found(host: &str) -> Self {
    SysError {
      code: "ENOTFOUND",
      errno: EAI_NONAME,
      syscall: "getaddrinfo",
      message: format!("getaddrinfo ENOTFOUND {host}"),
      address: None,
      port: None,
      hostname: Some(host.to_string()),
      hide_location: false,
    }
  }

  pub(crate) fn to_js(&self, env: Env) -> Value {
    let msg = js::string(env, &self.message);
    let mut e = std::ptr::null_mut();
    unsafe { sys::napi_create_error(env, std::ptr::null_mut(), msg, &mut e) };
    if e.is_null() {
      return js::undefined(env);
    }
    let _ = js::set(env, e, "code", js::string(env, self.code));
    let _ = js::set(env, e, "syscall", js::string(env, self.syscall));
    let _ = js::set(env, e, "errno", js::number(env, f64::from(self.errno)));
    if let Some(h) = &self.hostname {
      let _ = js::set(env, e, "hostname", js::string(env, h));
    }
    let put = |key: &'static str, v: Value| {
      if self.hide_location {
        let _ = js::define_hidden(env, e, key, v);
      } else {
        let _ = js::set(env, e, key, v);
      }
    };
    if let Some(a) = &self.address {
      put("address", js::string(env, a));
    }
    if let Some(p) = self.port {
      put("port", js::number(env, f64::from(p)));
    }
    e
  }

  pub(crate) fn throw(&self, env: Env) -> napi::Error {
    throw_value(env, self.to_js(env))
  }
}

/// Node's `ERR_INVALID_ARG_TYPE` "Received ..." suffix for a value of the wrong type.
pub(crate) fn describe_received(env: Env, v: Value) -> String {
  use sys::ValueType as T;
  match js::type_of(env, v) {
    T::napi_undefined => "Received undefined".into(),
    T::napi_null => "Received null".into(),
    T::napi_function => {
      let name = js::get(env, v, "name").ok().and_then(|n| js::get_string(env, n)).unwrap_or_default();
      if name.is_empty() { "Received function ".into() } else { format!("Received function {name}") }
    }
    T::napi_object => {
      let ctor = js::get(env, v, "constructor").ok();
      let name = ctor
        .filter(|c| js::type_of(env, *c) == T::napi_function)
        .and_then(|c| js::get(env, c, "name").ok())
        .and_then(|n| js::get_string(env, n))
        .unwrap_or_default();
      if name.is_empty() { "Received [object Object]".into() } else { format!("Received an instance of {name}") }
    }
    t => {
      let kind = match t {
        T::napi_boolean => "boolean",
        T::napi_number => "number",
        T::napi_string => "string",
        T::napi_symbol => "symbol",
        T::napi_bigint => "bigint",
        _ => "unknown",
      };
      let mut shown = match t {
        T::napi_string => format!("'{}'", js::get_string(env, v).unwrap_or_default()),
        T::napi_bigint => format!("{}n", js::to_string(env, v).unwrap_or_default()),
        T::napi_symbol => describe_symbol(env, v),
        _ => js::to_string(env, v).unwrap_or_default(),
      };
      if shown.chars().count() > 28 {
        shown = shown.chars().take(25).collect::<String>() + "...";
      }
      format!("Received type {kind} ({shown})")
    }
  }
}

fn describe_symbol(env: Env, v: Value) -> String {
  let desc = js::get(env, v, "description").ok().and_then(|d| js::get_string(env, d)).unwrap_or_default();
  format!("Symbol({desc})")
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn errno_names_follow_node() {
    assert_eq!(errno_info(libc::ECONNREFUSED).0, "ECONNREFUSED");
    assert_eq!(errno_info(libc::EADDRINUSE).0, "EADDRINUSE");
    assert_eq!(errno_info(9999).0, "UNKNOWN");
  }

  #[test]
  fn io_errors_are_negated() {
    let e = SysError::from_io(&io::Error::from_raw_os_error(libc::ECONNRESET), "read");
    assert_eq!(e.errno, -104);
    assert_eq!(e.message, "ECONNRESET: connection reset by peer, read");
    let l = SysError::listen(&io::Error::from_raw_os_error(libc::EADDRINUSE), "127.0.0.1", Some(80));
    assert_eq!(l.errno, -98);
    assert_eq!(l.message, "Failed to listen at 127.0.0.1");
  }
}
