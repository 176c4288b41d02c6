//! The TLS members of `Socket` (spec §6.4). On a plain socket each returns the inert value Bun
//! returns there and never throws; on a TLS socket they answer from the rustls session.

use napi::sys::{self, napi_value as Value};
use rustls::Connection;


use crate::class::{Ctx, Method};
use crate::conn::{self, How, Phase};
use crate::handlers::Handlers;
use crate::options::{self, Tls};
use crate::error::{pending, ArgError};
use crate::js;
use crate::socket::SocketHandle;
use crate::tls::{cert, verify_error_js, TlsState};

type R = napi::Result<Value>;

/// Runs `f` on the TLS session, or returns `plain` on a plain (or closed) socket.
fn with_tls(s: &SocketHandle, c: &Ctx, plain: fn(&Ctx) -> R, f: impl FnOnce(&TlsState) -> R) -> R {
  let conn = s.conn();
  let st = conn.st.try_borrow().map_err(|_| pending())?;
  match st.tls.as_deref() {
    // A closed TLS socket answers as a plain one, as in Bun (its session is gone there).
    Some(t) if st.phase != crate::conn::Phase::Closed => f(t),
    _ => plain(c),
  }
}

/// A TLS socket that has closed: a few members answer there as Bun's do on a dead TLS socket,
/// which differs from a plain socket's answer.
fn is_closed_tls(s: &SocketHandle) -> bool {
  s.conn().st.try_borrow().is_ok_and(|st| st.tls.is_some() && st.phase == crate::conn::Phase::Closed)
}

/// For members that answer differently in `open` before the ClientHello (a client TLS start
/// pending): `Some(server name)` then.
fn pending_name(s: &SocketHandle) -> Option<String> {
  let conn = s.conn();
  let st = conn.st.try_borrow().ok()?;
  let p = st.extra()?.pending_tls.as_deref()?;
  Some(p.servername.clone().or_else(|| p.opts.server_name.clone()).unwrap_or_else(|| p.host.clone()))
}

fn null(c: &Ctx) -> R {
  c.null()
}
fn undefined(c: &Ctx) -> R {
  c.undefined()
}
fn no(c: &Ctx) -> R {
  c.boolean(false)
}

pub(crate) const METHODS: &[(&str, Method<SocketHandle>)] = &[
  ("getPeerCertificate", get_peer_certificate),
  ("getCertificate", get_certificate),
  ("getCipher", get_cipher),
  ("getTLSVersion", get_tls_version),
  ("getEphemeralKeyInfo", get_ephemeral_key_info),
  ("getSharedSigalgs", get_shared_sigalgs),
  ("getTLSFinishedMessage", |s, c| bytes_or_undefined(s, c, |t| t.finished.as_deref())),
  ("getTLSPeerFinishedMessage", |s, c| bytes_or_undefined(s, c, |t| t.peer_finished.as_deref())),
  // (the watch records tickets on clients only: servers answer `undefined`)
  ("getTLSTicket", |s, c| bytes_or_undefined(s, c, |t| t.ticket.as_deref())),
  ("getSession", get_session),
  ("setSession", set_session),
  ("isSessionReused", is_session_reused),
  ("exportKeyingMaterial", export_keying_material),
  ("getAuthorizationError", get_authorization_error),
  ("setMaxSendFragment", set_max_send_fragment),
  ("disableRenegotiation", |_, c| c.undefined()),
  ("renegotiate", renegotiate),
  ("setVerifyMode", |_, c| c.undefined()),
  ("setServername", set_servername),
  ("getServername", get_servername),
  ("upgradeTLS", upgrade_tls),
];

/// `authorized`: whether the peer's certificate verified (`false` on plain sockets).
pub(crate) fn authorized(s: &SocketHandle, c: &Ctx) -> R {
  // Kept after the close, as in Bun.
  let conn = s.conn();
  let st = conn.st.try_borrow().map_err(|_| pending())?;
  c.boolean(st.tls.as_ref().is_some_and(|t| t.authorized))
}

/// `alpnProtocol`: `null` before the handshake, `false` when none was negotiated (and on plain
/// sockets), else the protocol.
pub(crate) fn alpn_protocol(s: &SocketHandle, c: &Ctx) -> R {
  if pending_name(s).is_some() {
    return c.null();
  }
  with_tls(s, c, no, |t| {
    if t.conn.is_handshaking() {
      return c.null();
    }
    match t.conn.alpn_protocol() {
      Some(p) => c.string(&String::from_utf8_lossy(p)),
      None => c.boolean(false),
    }
  })
}

fn get_peer_certificate(s: &SocketHandle, c: &Ctx) -> R {
  if pending_name(s).is_some() {
    return c.undefined();
  }
  let detailed = js::truthy(c.env, c.arg(0));
  if is_closed_tls(s) {
    return c.undefined();
  }
  with_tls(s, c, null, |t| {
    let Some(chain) = t.conn.peer_certificates().filter(|p| !p.is_empty()) else { return c.undefined() };
    let objs: Vec<Value> = if detailed {
      chain.iter().map(|d| cert::to_js(c.env, d.as_ref())).collect()
    } else {
      vec![cert::to_js(c.env, chain[0].as_ref())]
    };
    if detailed {
      // Node links the chain through issuerCertificate; a self-signed end points to itself.
      for (i, o) in objs.iter().enumerate() {
        let issuer = objs.get(i + 1).copied().or_else(|| cert::is_self_issued(chain[i].as_ref()).then_some(*o));
        if let Some(issuer) = issuer {
          let _ = js::set(c.env, *o, "issuerCertificate", issuer);
        }
      }
    }
    Ok(objs[0])
  })
}

fn get_certificate(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, undefined, |t| match &t.own_cert {
    Some(der) => Ok(cert::to_js(c.env, der)),
    None => c.undefined(),
  })
}

fn version(t: &TlsState) -> Option<&'static str> {
  match t.conn.protocol_version()? {
    rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
    rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
    _ => None,
  }
}

/// OpenSSL's name for a suite (TLS 1.3 names are the IANA ones).
fn openssl_name(iana: &str) -> String {
  let table = [
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
  ];
  table.iter().find(|(i, _)| *i == iana).map_or_else(|| iana.to_string(), |(_, o)| o.to_string())
}

fn get_cipher(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, undefined, |t| {
    let o = js::object(c.env);
    match (t.conn.negotiated_cipher_suite(), version(t)) {
      (Some(suite), Some(v)) => {
        let iana = suite.suite().as_str().unwrap_or("unknown").to_string();
        let iana = iana.replace("TLS13_", "TLS_");
        let _ = js::set(c.env, o, "name", js::string(c.env, &openssl_name(&iana)));
        let _ = js::set(c.env, o, "standardName", js::string(c.env, &iana));
        let _ = js::set(c.env, o, "version", js::string(c.env, v));
      }
      _ => {
        for k in ["name", "standardName", "version"] {
          let _ = js::set(c.env, o, k, js::null(c.env));
        }
      }
    }
    Ok(o)
  })
}

/// `"TLSv1.3"`/`"TLSv1.2"` once negotiated; `"unknown"` before (the typings' value).
fn get_tls_version(s: &SocketHandle, c: &Ctx) -> R {
  if pending_name(s).is_some() {
    return c.string("unknown");
  }
  with_tls(s, c, null, |t| c.string(version(t).unwrap_or("unknown")))
}

fn get_ephemeral_key_info(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, null, |t| {
    if t.server {
      return c.null();
    }
    let o = js::object(c.env);
    if version(t) == Some("TLSv1.2") {
      if let Some(g) = t.conn.negotiated_key_exchange_group() {
        let (name, size) = match g.name() {
          rustls::NamedGroup::X25519 => ("X25519", 253.0),
          rustls::NamedGroup::secp256r1 => ("prime256v1", 256.0),
          rustls::NamedGroup::secp384r1 => ("secp384r1", 384.0),
          _ => ("unknown", 0.0),
        };
        let _ = js::set(c.env, o, "type", js::string(c.env, "ECDH"));
        let _ = js::set(c.env, o, "name", js::string(c.env, name));
        let _ = js::set(c.env, o, "size", js::number(c.env, size));
      }
    }
    Ok(o)
  })
}

fn get_shared_sigalgs(s: &SocketHandle, c: &Ctx) -> R {
  if is_closed_tls(s) {
    return c.null();
  }
  with_tls(s, c, undefined, |_| {
    let mut a = std::ptr::null_mut();
    unsafe { sys::napi_create_array(c.env, &mut a) };
    Ok(a)
  })
}

fn is_session_reused(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, no, |t| c.boolean(t.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)))
}

fn get_authorization_error(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, null, |t| match &t.auth_error {
    Some(e) => Ok(verify_error_js(c.env, e)),
    None => c.null(),
  })
}

fn set_max_send_fragment(s: &SocketHandle, c: &Ctx) -> R {
  let conn = s.conn();
  if !conn.st.try_borrow().is_ok_and(|st| st.tls.is_some()) || is_closed_tls(s) {
    return no(c);
  }
  let v = c.arg(0);
  if js::type_of(c.env, v) != sys::ValueType::napi_number {
    return Err(ArgError::plain("Expected size to be a number").throw(c.env));
  }
  let n = js::get_f64(c.env, v).unwrap_or(0.0).trunc();
  let ok = (512.0..=16384.0).contains(&n);
  if ok {
    // rustls fixes its record size per configuration; bunnet hands the session plaintext in
    // pieces of at most `n` bytes instead, and rustls never joins pieces into one record.
    if let Some(t) = conn.st.try_borrow_mut().ok().as_mut().and_then(|st| st.tls.as_mut()) {
      t.max_fragment = Some(n as usize);
    }
  }
  c.boolean(ok)
}

/// A Buffer of what `pick` finds in the session, or `undefined`.
fn bytes_or_undefined(s: &SocketHandle, c: &Ctx, pick: impl FnOnce(&TlsState) -> Option<&[u8]>) -> R {
  with_tls(s, c, undefined, |t| match pick(t) {
    Some(b) => Ok(js::buffer(c.env, b)),
    None => c.undefined(),
  })
}

fn renegotiate(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, undefined, |_| Err(ArgError::plain("TLS renegotiation is not supported").throw(c.env)))
}

/// Client: the name it asked for (SNI, or the IP it connected to). Server: the SNI the client
/// sent, else the local address the client connected to (as Bun reports for IP connects).
/// Client: a token for this connection's session once a ticket arrived (`undefined` before).
fn get_session(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, undefined, |t| match t.sessions.as_ref().and_then(|x| x.export()) {
    Some(token) => Ok(js::buffer(c.env, &token)),
    None => c.undefined(),
  })
}

/// Offers a session from `getSession()`: effective in `open` of a client with a `handshake`
/// handler (before the ClientHello); ignored otherwise, as in Bun.
fn set_session(s: &SocketHandle, c: &Ctx) -> R {
  let conn = s.conn();
  let is_tls = conn.st.try_borrow().is_ok_and(|st| st.tls.is_some() || st.has_pending_tls());
  if !is_tls {
    return c.undefined();
  }
  let v = c.arg(0);
  let Some(bytes) = crate::bytes::string_or_binary(c.env, v) else {
    return Err(ArgError::plain("Expected session to be a string, Buffer or TypedArray").throw(c.env));
  };
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    if let Some(p) = st.pending_tls() {
      p.session = Some(bytes);
    }
  }
  c.undefined()
}

/// Client, in `open` before the handshake: the SNI name (and the name checked). Later: Bun's
/// errors.
fn set_servername(s: &SocketHandle, c: &Ctx) -> R {
  let conn = s.conn();
  let (pending, tls, server) = match conn.st.try_borrow() {
    Ok(st) => (st.has_pending_tls(), st.tls.is_some(), st.tls.as_ref().is_some_and(|t| t.server)),
    Err(_) => return c.undefined(),
  };
  if !pending && !tls || is_closed_tls(s) {
    return c.undefined();
  }
  if server {
    return Err(ArgError::plain("Cannot issue SNI from a TLS server-side socket").throw(c.env));
  }
  if c.argc == 0 {
    return Err(ArgError::plain("Expected 1 argument").throw(c.env));
  }
  if js::type_of(c.env, c.arg(0)) != sys::ValueType::napi_string {
    return Err(ArgError::plain("Expected \"serverName\" to be a string").throw(c.env));
  }
  let name = js::get_string(c.env, c.arg(0)).unwrap_or_default();
  if let Ok(mut st) = conn.st.try_borrow_mut() {
    if let Some(p) = st.pending_tls() {
      p.servername = Some(name);
      return c.undefined();
    }
  }
  Err(ArgError::plain("Already started.").throw(c.env))
}

fn get_servername(s: &SocketHandle, c: &Ctx) -> R {
  if let Some(name) = pending_name(s) {
    return c.string(&name);
  }
  let local = s.conn().st.try_borrow().ok().and_then(|st| st.io.as_ref().and_then(|io| crate::sockopt::local_addr(io.fd())));
  with_tls(s, c, undefined, |t| match (&t.conn, &t.servername) {
    (Connection::Client(_), Some(n)) => c.string(n),
    (Connection::Server(sc), _) => match sc.server_name() {
      Some(n) => c.string(n),
      None => local.map_or_else(|| c.undefined(), |a| c.string(&a.ip().to_string())),
    },
    _ => c.undefined(),
  })
}

fn export_keying_material(s: &SocketHandle, c: &Ctx) -> R {
  with_tls(s, c, undefined, |t| {
    let env = c.env;
    if c.argc < 2 {
      return Err(ArgError::plain("Expected length and label to be provided").throw(env));
    }
    if js::type_of(env, c.arg(0)) != sys::ValueType::napi_number {
      return Err(ArgError::plain("Expected length to be a number").throw(env));
    }
    let len = js::get_f64(env, c.arg(0)).unwrap_or(0.0).trunc();
    if !len.is_finite() || len < 0.0 {
      return Err(ArgError::plain("Expected length to be a positive number").throw(env));
    }
    if len > MAX_EXPORT_ARG {
      return Err(ArgError::range_error(format!(
        "The value of \"size\" is out of range. It must be >= 0 and <= {MAX_EXPORT_ARG}. Received {}",
        grouped(len as u64)
      ))
      .with_code("ERR_OUT_OF_RANGE")
      .throw(env));
    }
    if js::type_of(env, c.arg(1)) != sys::ValueType::napi_string {
      return Err(ArgError::plain("Expected label to be a string").throw(env));
    }
    let label = js::get_string(env, c.arg(1)).unwrap_or_default();
    let ctx_v = c.arg(2);
    let context = match js::type_of(env, ctx_v) {
      sys::ValueType::napi_undefined => None,
      _ => match crate::bytes::string_or_binary(env, ctx_v) {
        Some(b) => Some(b),
        None => return Err(ArgError::plain("Expected context to be a string, Buffer or TypedArray").throw(env)),
      },
    };
    if t.conn.is_handshaking() {
      return Err(ArgError::plain("OpenSSL HANDSHAKE_NOT_COMPLETE via OPENSSL_internal SSL routines").throw(env));
    }
    // TLS 1.3's HKDF-Expand gives at most 255 hash lengths (SHA-384: 12,240 bytes): nothing
    // larger is allocated. (TLS 1.2's PRF has no limit.)
    let too_large = || ArgError::plain("OpenSSL OUTPUT_TOO_LARGE via OPENSSL_internal HKDF functions").throw(env);
    if len > 255.0 * 48.0 && t.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
      return Err(too_large());
    }
    let mut out = Vec::new();
    if out.try_reserve_exact(len as usize).is_err() {
      return Err(ArgError::plain("bunnet: out of memory for exportKeyingMaterial").throw(env));
    }
    out.resize(len as usize, 0u8);
    if !out.is_empty() {
      t.conn.export_keying_material(&mut out, label.as_bytes(), context.as_deref()).map_err(|_| too_large())?;
    }
    Ok(js::buffer(env, &out))
  })
}

/// The largest `exportKeyingMaterial` length Bun takes before its RangeError (a Buffer size).
const MAX_EXPORT_ARG: f64 = 4_294_967_296.0;

/// `n` with Node's numeric separators (`1_099_511_627_776`), as in its range errors.
fn grouped(n: u64) -> String {
  let digits = n.to_string();
  let mut out = String::with_capacity(digits.len() + digits.len() / 3);
  for (i, ch) in digits.chars().enumerate() {
    if i > 0 && (digits.len() - i) % 3 == 0 {
      out.push('_');
    }
    out.push(ch);
  }
  out
}

/// STARTTLS: `upgradeTLS({ data?, tls, socket })` → `[raw, tls]` (spec §6.5). Two new
/// sockets on the same connection: `tls` carries plaintext with the given handlers (its `open`
/// runs before this returns, `handshake` later); `raw` keeps the original `data`. The original
/// object is detached (readyState -1, writes -1). Works on client and accepted sockets.
fn upgrade_tls(s: &SocketHandle, c: &Ctx) -> R {
  let env = c.env;
  let o = c.arg(0);
  if js::type_of(env, o) != sys::ValueType::napi_object {
    return Err(ArgError::plain("Expected options object").throw(env));
  }
  let socket = js::get(env, o, "socket").map_err(|_| pending())?;
  if js::is_undefined(env, socket) {
    return Err(ArgError::plain("Expected \"socket\" option").throw(env));
  }
  let tls_v = js::get(env, o, "tls").map_err(|_| pending())?;
  if !js::truthy(env, tls_v) {
    return Err(ArgError::plain("Expected \"tls\" option").throw(env));
  }
  let handlers = Handlers::from_js(env, socket).map_err(|e| e.map_or_else(pending, |e| e.throw(env)))?;
  let opts = match options::parse_tls(env, tls_v).map_err(|e| e.throw(env))? {
    Tls::On(o) => o,
    Tls::Off => Box::default(),
  };
  let conn = s.conn();
  let (is_server, host) = match conn.st.try_borrow() {
    Ok(st) if st.phase == Phase::Open && st.tls.is_none() => (st.listener.is_some(), st.extra().and_then(|x| x.host.clone())),
    _ => return Err(ArgError::plain("Cannot upgrade a socket that is closed or already TLS").throw(env)),
  };
  let new_data = js::get(env, o, "data").map_err(|_| pending())?;
  let old_data = js::get(env, c.this, "data").map_err(|_| pending())?;
  let raw = crate::socket::new_js_view(env, &conn, old_data)?;
  // SAFETY: `st.js` is non-null only while its object is held strongly (`ConnState::js`).
  let old_ref = conn.st.try_borrow().ok().map(|st| st.js).filter(|h| !h.is_null()).map_or(std::ptr::null_mut(), |h| unsafe { (*h).wrap_ref() });
  let tls = crate::socket::new_js(env, &conn, new_data)?;
  crate::class::release(env, old_ref);
  let old_handlers = conn.st.try_borrow_mut().ok().and_then(|mut st| st.handlers.replace(crate::handlers::HandlerRef::own(handlers)));
  s.detach();
  let started = if is_server {
    crate::tls::config::server(&opts).and_then(|shared| crate::tls::start_server(&conn, &opts, &shared))
  } else {
    let remote = conn.st.try_borrow().ok().and_then(|st| st.remote.as_ref().map(|a| a.get().ip().to_string()));
    let host = host.map(String::from).or(remote).unwrap_or_default();
    crate::tls::start_client(&conn, &opts, &host, None)
  };
  if let Err(e) = started {
    conn::close(env, &conn, How::Reset, None);
    return Err(ArgError::plain(format!("TLS upgrade failed: {e}")).throw(env));
  }
  if let (Some(handlers), Ok(raw_ref)) = (old_handlers, js::reference(env, raw)) {
    if let Ok(mut st) = conn.st.try_borrow_mut() {
      if let Some(t) = st.tls.as_mut() {
        t.tap = Some(Box::new(crate::tls::Tap { handlers, raw: raw_ref }));
      }
    }
  }
  crate::tls::mark_opened(&conn);
  // Bytes already in the kernel (the rest of a full read whose handler upgraded, or a pipelined
  // ClientHello) raise no new edge: read on through the session on the next loop turn.
  let token = conn.token.get();
  let _ = crate::reactor::with(|r| r.kick(token));
  conn::emit_open(env, &conn);
  let mut arr = std::ptr::null_mut();
  unsafe {
    sys::napi_create_array_with_length(env, 2, &mut arr);
    sys::napi_set_element(env, arr, 0, raw);
    sys::napi_set_element(env, arr, 1, tls);
  }
  Ok(arr)
}
