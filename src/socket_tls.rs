//! The TLS members of `Socket` as they answer on a plain (non-TLS) socket: the inert values Bun
//! returns there (spec §6.4), never a throw. `upgradeTLS` validates its options as Bun does; the
//! TLS session itself is not part of this build and says so.

use napi::sys::napi_value as Value;

use crate::class::{Ctx, Method};
use crate::error::{pending, ArgError};
use crate::js;
use crate::socket::SocketHandle;

type R = napi::Result<Value>;

fn null(_: &SocketHandle, c: &Ctx) -> R {
  c.null()
}

fn undefined(_: &SocketHandle, c: &Ctx) -> R {
  c.undefined()
}

fn no(_: &SocketHandle, c: &Ctx) -> R {
  c.boolean(false)
}

pub(crate) const METHODS: &[(&str, Method<SocketHandle>)] = &[
  ("getPeerCertificate", null),
  ("getCertificate", undefined),
  ("getCipher", undefined),
  ("getTLSVersion", null),
  ("getEphemeralKeyInfo", null),
  ("getSharedSigalgs", undefined),
  ("getTLSFinishedMessage", undefined),
  ("getTLSPeerFinishedMessage", undefined),
  ("getTLSTicket", undefined),
  ("getSession", undefined),
  ("setSession", undefined),
  ("isSessionReused", no),
  ("exportKeyingMaterial", undefined),
  ("getAuthorizationError", null),
  ("setMaxSendFragment", no),
  ("disableRenegotiation", undefined),
  ("renegotiate", undefined),
  ("setVerifyMode", undefined),
  ("setServername", undefined),
  ("getServername", undefined),
  ("upgradeTLS", upgrade_tls),
];

/// `authorized`: `false` on plain sockets.
pub(crate) fn authorized(s: &SocketHandle, c: &Ctx) -> R {
  no(s, c)
}

/// `alpnProtocol`: `false` on plain sockets.
pub(crate) fn alpn_protocol(s: &SocketHandle, c: &Ctx) -> R {
  no(s, c)
}

/// STARTTLS. Bun's argument errors first; then an honest "not implemented".
fn upgrade_tls(_: &SocketHandle, c: &Ctx) -> R {
  let o = c.arg(0);
  if js::type_of(c.env, o) != napi::sys::ValueType::napi_object {
    return Err(ArgError::plain("Expected options object").throw(c.env));
  }
  let socket = js::get(c.env, o, "socket").map_err(|_| pending())?;
  if js::is_undefined(c.env, socket) {
    return Err(ArgError::plain("Expected \"socket\" option").throw(c.env));
  }
  let tls = js::get(c.env, o, "tls").map_err(|_| pending())?;
  if !js::truthy(c.env, tls) {
    return Err(ArgError::plain("Expected \"tls\" option").throw(c.env));
  }
  Err(crate::tls_unavailable(c.env))
}
