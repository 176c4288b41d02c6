//! The TLS members of `Socket` as they answer on a plain (non-TLS) socket: the inert values Bun
//! returns there (spec §6.4), never a throw.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::ArgError;
use crate::js::{self, Raw};
use crate::socket::Socket;

fn undefined(env: &Env) -> Raw {
  Raw(js::undefined(env.raw()))
}

fn null(env: &Env) -> Raw {
  Raw(js::null(env.raw()))
}

#[napi]
impl Socket {
  /// `null` on a plain socket.
  #[napi]
  pub fn get_peer_certificate(&self, env: Env) -> Raw {
    null(&env)
  }

  /// `undefined` on a plain socket.
  #[napi]
  pub fn get_certificate(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// `undefined` on a plain socket.
  #[napi]
  pub fn get_cipher(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// `null` on a plain socket.
  #[napi(js_name = "getTLSVersion")]
  pub fn get_tls_version(&self, env: Env) -> Raw {
    null(&env)
  }

  /// `null` on a plain socket.
  #[napi]
  pub fn get_ephemeral_key_info(&self, env: Env) -> Raw {
    null(&env)
  }

  /// `undefined` on a plain socket.
  #[napi]
  pub fn get_shared_sigalgs(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// `undefined` on a plain socket.
  #[napi(js_name = "getTLSFinishedMessage")]
  pub fn get_tls_finished_message(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// `undefined` on a plain socket.
  #[napi(js_name = "getTLSPeerFinishedMessage")]
  pub fn get_tls_peer_finished_message(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// `undefined` on a plain socket.
  #[napi(js_name = "getTLSTicket")]
  pub fn get_tls_ticket(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// `undefined` on a plain socket.
  #[napi]
  pub fn get_session(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// Ignored on a plain socket.
  #[napi]
  pub fn set_session(&self, env: Env, _session: Unknown) -> Raw {
    undefined(&env)
  }

  /// `false` on a plain socket.
  #[napi]
  pub fn is_session_reused(&self) -> bool {
    false
  }

  /// `undefined` on a plain socket.
  #[napi]
  pub fn export_keying_material(&self, env: Env, _length: Unknown, _label: Unknown, _context: Unknown) -> Raw {
    undefined(&env)
  }

  /// `null` on a plain socket.
  #[napi]
  pub fn get_authorization_error(&self, env: Env) -> Raw {
    null(&env)
  }

  /// `false` on a plain socket.
  #[napi]
  pub fn set_max_send_fragment(&self, _size: Unknown) -> bool {
    false
  }

  /// No-op on a plain socket.
  #[napi]
  pub fn disable_renegotiation(&self) {}

  /// No-op on a plain socket.
  #[napi]
  pub fn renegotiate(&self) {}

  /// No-op on a plain socket.
  #[napi]
  pub fn set_verify_mode(&self, _request_cert: Unknown, _reject_unauthorized: Unknown) {}

  /// No-op on a plain socket.
  #[napi]
  pub fn set_servername(&self, _name: Unknown) {}

  /// `undefined` on a plain socket.
  #[napi]
  pub fn get_servername(&self, env: Env) -> Raw {
    undefined(&env)
  }

  /// STARTTLS. Validates its options as Bun does; the TLS session itself is not in this build.
  #[napi(js_name = "upgradeTLS")]
  pub fn upgrade_tls(&self, env: Env, options: Unknown) -> Result<Raw> {
    let e = env.raw();
    let o = options.value().value;
    use napi::sys::ValueType as T;
    if !matches!(js::type_of(e, o), T::napi_object) {
      return Err(ArgError::plain("Expected options object").throw(e));
    }
    let socket = js::get(e, o, "socket").map_err(|_| crate::error::pending())?;
    if js::is_undefined(e, socket) {
      return Err(ArgError::plain("Expected \"socket\" option").throw(e));
    }
    let tls = js::get(e, o, "tls").map_err(|_| crate::error::pending())?;
    if !js::truthy(e, tls) {
      return Err(ArgError::plain("Expected \"tls\" option").throw(e));
    }
    Err(crate::tls_unavailable(e))
  }
}
