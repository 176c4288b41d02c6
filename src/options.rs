//! `connect()`/`listen()` options: validated once, in Bun's order and with Bun's messages, into a
//! plain [`SocketConfig`] the rest of the crate uses. Nothing here keeps a JS value except the
//! handler set (references) and the raw `data` value the caller stores right away.

use napi::sys;

use crate::error::ArgError;
use crate::handlers::Handlers;
use crate::js::{self, Env, Value};
use crate::tls::config::TlsOptions;

/// Where to connect to or listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
  Tcp { host: String, port: u16 },
  Unix(String),
}

/// The `tls` option after Bun's rules: `{}`, `false`, `null`, `undefined` all mean plain.
pub(crate) enum Tls {
  Off,
  On(Box<TlsOptions>),
}

pub(crate) struct SocketConfig {
  pub target: Target,
  pub handlers: std::rc::Rc<Handlers>,
  pub data: Value,
  pub allow_half_open: bool,
  pub exclusive: bool,
  pub reuse_port: bool,
  pub ipv6_only: bool,
  pub tls: Tls,
}

/// Which entry point is validating: the two differ in one message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
  Connect,
  Listen,
}

/// A validation failure: an argument error to throw, or a JS exception already pending (a getter
/// on the options object threw).
pub(crate) enum Invalid {
  Arg(ArgError),
  Pending,
}

impl From<ArgError> for Invalid {
  fn from(e: ArgError) -> Self {
    Invalid::Arg(e)
  }
}

impl Invalid {
  pub(crate) fn throw(self, env: Env) -> napi::Error {
    match self {
      Invalid::Arg(e) => e.throw(env),
      Invalid::Pending => crate::error::pending(),
    }
  }
}

fn get(env: Env, obj: Value, key: &'static str) -> Result<Value, Invalid> {
  js::get(env, obj, key).map_err(|_| Invalid::Pending)
}

/// The keys of `SocketOptions` that `connect()` reads, in the order of the values `index.js`
/// reads in one go (see [`Preread`]).
pub(crate) const OPTION_KEYS: [&str; 11] = ["socket", "unix", "hostname", "host", "port", "tls", "allowHalfOpen", "exclusive", "reusePort", "ipv6Only", "data"];

/// The values of [`OPTION_KEYS`], then of the `socket` object's [`crate::handlers::HANDLER_KEYS`],
/// read by the JS fast path of `connect()` (property loads in JIT code with inline caches) and
/// passed as arguments, instead of one Node-API lookup with a cached key each: ~21 lookups of
/// ~4 Node-API calls per `connect()`; then the handler array and mask the JS made when the
/// handler values passed its type checks (see [`Handlers::from_js_with`]). `None`: read them here.
#[derive(Clone, Copy)]
pub(crate) struct Preread<'a>(pub Option<&'a [Value]>);

impl<'a> Preread<'a> {
  /// `obj[key]`, taken from the values read by JS when there are some for `key`.
  fn option(self, env: Env, obj: Value, key: &'static str) -> Result<Value, Invalid> {
    match self.0.zip(OPTION_KEYS.iter().position(|k| *k == key)) {
      Some((vals, i)) => vals.get(i).copied().ok_or(Invalid::Pending),
      None => get(env, obj, key),
    }
  }

  /// The handler values, after the options' (then the handler array and mask, see
  /// [`Handlers::from_js_with`]).
  fn handlers(self) -> Option<&'a [Value]> {
    self.0.and_then(|v| v.get(OPTION_KEYS.len()..))
  }

  /// The handler array and mask, if the JS fast path checked the options and handler objects
  /// (objects, not arrays) and the handler types, and made the array (see
  /// [`Handlers::from_js_with`]).
  fn checked(self, env: Env) -> Option<(Value, u16, u32)> {
    self.handlers().and_then(|h| crate::handlers::prechecked(env, h))
  }
}

pub(crate) fn parse(env: Env, options: Option<Value>, entry: Entry) -> Result<SocketConfig, Invalid> {
  parse_with(env, options, entry, Preread(None))
}

pub(crate) fn parse_with(env: Env, options: Option<Value>, entry: Entry, pre: Preread) -> Result<SocketConfig, Invalid> {
  use sys::ValueType as T;
  let prechecked = pre.checked(env);
  let checked = prechecked.is_some();
  let bits = prechecked.map_or(0, |(_, _, m)| m);
  // Taken out before anything can fail, so a call refused before its target was parsed leaves
  // no target behind that the JS did not record.
  let last = if bits & TARGET_RECORDED != 0 {
    LAST_TARGET.with(|l| l.try_borrow_mut().ok().and_then(|mut l| l.take())).filter(|(e, _)| *e == env).map(|(_, t)| t)
  } else {
    None
  };
  let options = match options {
    Some(o) if checked || matches!(js::type_of(env, o), T::napi_object | T::napi_function) => o,
    _ => {
      let msg = if entry == Entry::Connect { "Expected options object" } else { "Expected object" };
      return Err(ArgError::type_error(msg).into());
    }
  };
  if !checked && is_array(env, options) {
    return Err(ArgError::type_error("SocketOptions must be an object").into());
  }
  let socket = pre.option(env, options, "socket")?;
  if !checked && js::is_undefined(env, socket) {
    return Err(ArgError::type_error("SocketOptions.socket is required").into());
  }
  let handlers = Handlers::from_js_with(env, socket, pre.handlers(), prechecked).map_err(|e| e.map_or(Invalid::Pending, Invalid::Arg))?;
  let target = target_of(env, options, pre, bits, last)?;
  // All `undefined` (checked by the JS, see DEFAULTS): what their parses make of that.
  let defaults = bits & DEFAULTS != 0;
  let tls = if defaults { Tls::Off } else { parse_tls(env, pre.option(env, options, "tls")?)? };
  let allow_half_open = !defaults && parse_bool(env, options, "allowHalfOpen", pre)?;
  let exclusive = !defaults && parse_bool(env, options, "exclusive", pre)?;
  let reuse_port = !defaults && parse_bool(env, options, "reusePort", pre)?;
  let ipv6_only = !defaults && parse_bool(env, options, "ipv6Only", pre)?;
  let data = pre.option(env, options, "data")?;
  Ok(SocketConfig { target, handlers, data, allow_half_open, exclusive, reuse_port, ipv6_only, tls })
}

fn absent(env: Env, v: Value) -> bool {
  matches!(js::type_of(env, v), sys::ValueType::napi_undefined | sys::ValueType::napi_null)
}

/// JS truthiness, with the common cases settled by the type alone (one Node-API call).
fn given(env: Env, v: Value) -> bool {
  use sys::ValueType as T;
  match js::type_of(env, v) {
    T::napi_undefined | T::napi_null => false,
    T::napi_string => {
      let mut len = 0usize;
      unsafe { sys::napi_get_value_string_utf8(env, v, std::ptr::null_mut(), 0, &mut len) };
      len > 0
    }
    T::napi_object | T::napi_function | T::napi_symbol | T::napi_external => true,
    _ => js::truthy(env, v),
  }
}

/// Mask bits from `connect()`'s JS (see `connect::js_function`): `unix` is `undefined`,
/// `hostname` a non-empty string and `port` a number, or `unix` is a non-empty string, and the JS
/// remembered them as the last target; with [`TARGET_SAME`] they are the very values of its
/// previous call.
pub(crate) const TARGET_RECORDED: u32 = 1 << 17;
pub(crate) const TARGET_SAME: u32 = 1 << 18;
/// Mask bit from `connect()`'s JS: every one of [`DEFAULTED_KEYS`] is `undefined`, so their
/// parses (a type check each) are skipped.
pub(crate) const DEFAULTS: u32 = 1 << 21;
/// The options whose `undefined` [`DEFAULTS`] stands for.
pub(crate) const DEFAULTED_KEYS: [&str; 5] = ["tls", "allowHalfOpen", "exclusive", "reusePort", "ipv6Only"];

thread_local! {
  /// The target of the last call with [`TARGET_RECORDED`], if it parsed; every such call takes
  /// it out on entry, so it is there only when the JS's record of that call is the latest. With
  /// its environment: the JS's record is per environment.
  static LAST_TARGET: std::cell::RefCell<Option<(Env, Target)>> = const { std::cell::RefCell::new(None) };
}

/// [`parse_target`], or for a call whose `hostname` and `port` (or `unix`) are the same primitive
/// values as the previous call's (so their coercion and checks come out the same), that call's
/// result (`last`): connection churn to one address skips the host's coercion and UTF-8 reads
/// and the port's coercion and range checks per `connect()` (the host or path is still copied
/// once, from the kept target).
fn target_of(env: Env, options: Value, pre: Preread, bits: u32, last: Option<Target>) -> Result<Target, Invalid> {
  let target = match last {
    Some(t) if bits & TARGET_SAME != 0 => Ok(t),
    _ => parse_target(env, options, pre),
  };
  if bits & TARGET_RECORDED != 0 {
    let kept = target.as_ref().ok().map(|t| (env, t.clone()));
    LAST_TARGET.with(|l| l.try_borrow_mut().map(|mut l| *l = kept).ok());
  }
  target
}

fn parse_target(env: Env, options: Value, pre: Preread) -> Result<Target, Invalid> {
  let either = || ArgError::type_error("Expected either \"hostname\" or \"unix\"");
  // As Bun 1.4.5 takes them: a falsy `unix` or `hostname` (`""`, `0`, `false`, `null`, `NaN`)
  // counts as not given; a truthy `hostname` is stringified and must not come out empty.
  let unix = pre.option(env, options, "unix")?;
  if given(env, unix) {
    if js::type_of(env, unix) != sys::ValueType::napi_string {
      return Err(ArgError::type_error("SocketOptions.unix must be a string").into());
    }
    return Ok(Target::Unix(js::get_string(env, unix).unwrap_or_default()));
  }
  let mut hostname = pre.option(env, options, "hostname")?;
  if !given(env, hostname) {
    hostname = pre.option(env, options, "host")?;
  }
  if !given(env, hostname) {
    return Err(either().into());
  }
  let host = js::to_string(env, hostname).ok_or(Invalid::Pending)?;
  if host.is_empty() {
    return Err(ArgError::type_error("Expected a non-empty \"hostname\"").into());
  }
  let port = pre.option(env, options, "port")?;
  if absent(env, port) {
    return Err(ArgError::type_error("Missing \"port\"").into());
  }
  let n = if js::type_of(env, port) == napi::sys::ValueType::napi_bigint {
    // `Number(10n)`, as Bun takes it (coercion to a number throws for a BigInt).
    let (mut v, mut lossless) = (0i64, false);
    unsafe { napi::sys::napi_get_value_bigint_int64(env, port, &mut v, &mut lossless) };
    if !lossless || v < 0 {
      // Bun's message for these omits the value.
      return Err(ArgError::range_error("SocketOptions.port must be in the range [0, 65535]").into());
    }
    v as f64
  } else {
    js::to_number(env, port).ok_or(Invalid::Pending)?
  };
  Ok(Target::Tcp { host, port: validate_port(n)? })
}

/// Bun's port rules: any value `Number()` turns into an integer in `[0, 65535]`.
pub(crate) fn validate_port(n: f64) -> Result<u16, ArgError> {
  if !n.is_finite() || n.fract() != 0.0 || n.abs() > 9_007_199_254_740_991.0 {
    return Err(ArgError::range_error(format!("SocketOptions.port must be an integer (received {})", js_number(n))));
  }
  if !(0.0..=65535.0).contains(&n) {
    return Err(ArgError::range_error(format!("SocketOptions.port must be in the range [0, 65535] (received {})", js_number(n))));
  }
  Ok(n as u16)
}

/// Formats a number the way JS's `String(n)` does for the values messages show.
pub(crate) fn js_number(n: f64) -> String {
  if n.is_nan() {
    "NaN".into()
  } else if n.is_infinite() {
    if n > 0.0 {
      "Infinity".into()
    } else {
      "-Infinity".into()
    }
  } else if n == 0.0 {
    "0".into()
  } else {
    // ECMAScript Number::toString: the shortest round-trip digits (Rust's `{:e}` gives them with
    // their exponent), placed as JS places them (exponent form from 1e21 up and below 1e-6).
    let sci = format!("{:e}", n.abs());
    let Some((mant, exp)) = sci.split_once('e') else { return format!("{n}") };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let (Ok(e), k) = (exp.parse::<i64>(), digits.len() as i64) else { return format!("{n}") };
    let point = e + 1;
    let body = if k <= point && point <= 21 {
      format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
      format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    } else if -6 < point && point <= 0 {
      format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
      let m = if k == 1 { digits.clone() } else { format!("{}.{}", &digits[..1], &digits[1..]) };
      format!("{m}e{}{}", if e >= 0 { '+' } else { '-' }, e.abs())
    };
    if n < 0.0 {
      format!("-{body}")
    } else {
      body
    }
  }
}

fn parse_bool(env: Env, options: Value, key: &'static str, pre: Preread) -> Result<bool, Invalid> {
  let v = pre.option(env, options, key)?;
  // Only `undefined` is absent: `null` is not a boolean (Bun).
  if js::is_undefined(env, v) {
    return Ok(false);
  }
  js::get_bool(env, v)
    .filter(|_| js::type_of(env, v) == sys::ValueType::napi_boolean)
    .ok_or_else(|| ArgError::type_error(format!("SocketOptions.{key} must be a boolean")).into())
}

pub(crate) fn parse_tls(env: Env, v: Value) -> Result<Tls, Invalid> {
  use sys::ValueType as T;
  match js::type_of(env, v) {
    T::napi_undefined | T::napi_null => Ok(Tls::Off),
    T::napi_boolean => Ok(if js::get_bool(env, v).unwrap_or(false) { Tls::On(Box::default()) } else { Tls::Off }),
    // Bun: an array is not an options object, a function is (and without fields asks for nothing).
    T::napi_object if is_array(env, v) => Err(ArgError::type_error("TLSOptions must be an object").into()),
    T::napi_object | T::napi_function => {
      validate_tls_fields(env, v)?;
      if !tls_requested(env, v)? {
        return Ok(Tls::Off);
      }
      Ok(Tls::On(Box::new(read_tls_options(env, v)?)))
    }
    _ => Err(ArgError::type_error("TLSOptions must be an object").into()),
  }
}

/// Whether a `TLSOptions` object asks for TLS at all: Bun 1.4.5 (probed) goes plain when no field
/// it knows differs from its default, so `{}`, `{ ca: undefined }`, `{ ca: [] }`,
/// `{ requestCert: false }`, `{ secureOptions: 0 }` or unknown keys alone are plain TCP, while any
/// `rejectUnauthorized`, `serverName`/`servername`, `ciphers`, `passphrase` or `ALPNProtocols`
/// value (even `""` or the default `true`) is TLS.
fn tls_requested(env: Env, tls: Value) -> Result<bool, Invalid> {
  use sys::ValueType as T;
  for key in ["key", "cert", "ca", "crl"] {
    let v = get(env, tls, key)?;
    let empty = absent(env, v) || (is_array(env, v) && array_items(env, v)?.is_empty());
    if !empty {
      return Ok(true);
    }
  }
  for key in ["rejectUnauthorized", "serverName", "servername", "ciphers", "passphrase", "ALPNProtocols"] {
    if !absent(env, get(env, tls, key)?) {
      return Ok(true);
    }
  }
  for key in ["requestCert", "lowMemoryMode", "secureOptions"] {
    let v = get(env, tls, key)?;
    if !absent(env, v) && (js::type_of(env, v) != T::napi_boolean || js::truthy(env, v)) && js::get_f64(env, v) != Some(0.0) {
      return Ok(true);
    }
  }
  Ok(false)
}

/// Type checks of the `TLSOptions` fields Bun checks synchronously, with Bun's messages.
fn validate_tls_fields(env: Env, tls: Value) -> Result<(), Invalid> {
  use sys::ValueType as T;
  let alpn = get(env, tls, "ALPNProtocols")?;
  if !(absent(env, alpn) || js::type_of(env, alpn) == T::napi_string || is_buffer_source(env, alpn)) {
    return Err(ArgError::type_error("TLSOptions.ALPNProtocols must be of type string, ArrayBuffer, or null").into());
  }
  for key in ["ca", "cert", "key"] {
    let v = get(env, tls, key)?;
    if absent(env, v) || is_pem_source(env, v) {
      continue;
    }
    let ok = is_array(env, v) && array_items(env, v)?.into_iter().all(|item| is_pem_source(env, item));
    if !ok {
      return Err(
        ArgError::type_error(format!("TLSOptions.{key} must be of type string, ArrayBuffer, Blob, array of <string, ArrayBuffer, or Blob>, or null")).into(),
      );
    }
  }
  let server_name = get(env, tls, "serverName")?;
  if !absent(env, server_name) && js::type_of(env, server_name) != T::napi_string {
    return Err(ArgError::type_error("TLSOptions.serverName must be a string").into());
  }
  for key in ["rejectUnauthorized", "requestCert"] {
    let v = get(env, tls, key)?;
    if !absent(env, v) && js::type_of(env, v) != T::napi_boolean {
      return Err(ArgError::type_error(format!("TLSOptions.{key} must be a boolean")).into());
    }
  }
  Ok(())
}

/// The bytes of a string or binary value (PEM text, ALPN wire format).
fn source_bytes(env: Env, v: Value) -> Vec<u8> {
  crate::bytes::string_or_binary(env, v).unwrap_or_default()
}

/// A PEM option: one source or an array of them.
fn pem_sources(env: Env, tls: Value, key: &'static str) -> Result<Option<Vec<Vec<u8>>>, Invalid> {
  let v = get(env, tls, key)?;
  if absent(env, v) {
    return Ok(None);
  }
  if is_array(env, v) {
    return Ok(Some(array_items(env, v)?.into_iter().map(|i| source_bytes(env, i)).collect()));
  }
  Ok(Some(vec![source_bytes(env, v)]))
}

/// Reads the (already type-checked) `TLSOptions` into rustls material; bad PEM throws here.
fn read_tls_options(env: Env, tls: Value) -> Result<TlsOptions, Invalid> {
  use crate::tls::config;
  let mut o = TlsOptions::default();
  if let Some(ca) = pem_sources(env, tls, "ca")? {
    o.ca = Some(config::certs(&ca)?);
  }
  let cert = pem_sources(env, tls, "cert")?;
  let key = pem_sources(env, tls, "key")?;
  let pass = get(env, tls, "passphrase")?;
  let passphrase = (js::type_of(env, pass) == sys::ValueType::napi_string).then(|| js::get_string(env, pass)).flatten();
  if let (Some(cert), Some(key)) = (&cert, &key) {
    o.chain = config::certs(cert)?;
    o.key = Some(config::certified_key(o.chain.clone(), key, passphrase.as_deref())?);
  } else if let Some(one) = cert.or(key) {
    // Only one of the pair: still validate it as PEM, like Bun.
    config::certs(&one).map(|_| ()).or_else(|e| if one.iter().any(|k| k.starts_with(b"-----BEGIN")) { Ok(()) } else { Err(e) })?;
  }
  let name = get(env, tls, "serverName")?;
  let name = if absent(env, name) { get(env, tls, "servername")? } else { name };
  if js::type_of(env, name) == sys::ValueType::napi_string {
    o.server_name = js::get_string(env, name).filter(|n| !n.is_empty());
  }
  let reject = get(env, tls, "rejectUnauthorized")?;
  o.reject_unauthorized = js::get_bool(env, reject).filter(|_| js::type_of(env, reject) == sys::ValueType::napi_boolean);
  let request = get(env, tls, "requestCert")?;
  o.request_cert = js::type_of(env, request) == sys::ValueType::napi_boolean && js::get_bool(env, request) == Some(true);
  let alpn = get(env, tls, "ALPNProtocols")?;
  if !absent(env, alpn) {
    o.alpn = config::alpn_wire(&source_bytes(env, alpn));
  }
  let ciphers = get(env, tls, "ciphers")?;
  if js::type_of(env, ciphers) == sys::ValueType::napi_string {
    o.ciphers = js::get_string(env, ciphers).and_then(|c| config::cipher_codes(&c));
  }
  if let Some(crl) = pem_sources(env, tls, "crl")? {
    o.crls = config::crls(&crl)?;
  }
  let so = get(env, tls, "secureOptions")?;
  if js::type_of(env, so) == sys::ValueType::napi_number {
    o.secure_options = js::get_f64(env, so).unwrap_or(0.0) as u32;
  }
  Ok(o)
}

fn is_pem_source(env: Env, v: Value) -> bool {
  js::type_of(env, v) == sys::ValueType::napi_string || is_buffer_source(env, v)
}

pub(crate) fn is_buffer_source(env: Env, v: Value) -> bool {
  let (mut a, mut b, mut c) = (false, false, false);
  unsafe {
    sys::napi_is_arraybuffer(env, v, &mut a);
    sys::napi_is_typedarray(env, v, &mut b);
    sys::napi_is_dataview(env, v, &mut c);
  }
  a || b || c
}

fn is_array(env: Env, v: Value) -> bool {
  let mut r = false;
  unsafe { sys::napi_is_array(env, v, &mut r) };
  r
}

fn array_items(env: Env, arr: Value) -> Result<Vec<Value>, Invalid> {
  let mut len = 0u32;
  unsafe { sys::napi_get_array_length(env, arr, &mut len) };
  (0..len).map(|i| js::element(env, arr, i).ok_or(Invalid::Pending)).collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn ports_follow_bun() {
    assert_eq!(validate_port(0.0), Ok(0));
    assert_eq!(validate_port(65535.0), Ok(65535));
    assert_eq!(validate_port(1.5).unwrap_err().message, "SocketOptions.port must be an integer (received 1.5)");
    assert_eq!(validate_port(f64::NAN).unwrap_err().message, "SocketOptions.port must be an integer (received NaN)");
    assert_eq!(validate_port(-1.0).unwrap_err().message, "SocketOptions.port must be in the range [0, 65535] (received -1)");
    assert_eq!(validate_port(65536.0).unwrap_err().message, "SocketOptions.port must be in the range [0, 65535] (received 65536)");
  }
}
