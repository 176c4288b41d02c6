//! TLS errors as Node and Bun shape them: `code`, `errno: 0` and BoringSSL-style messages
//! (`error:1000045c:SSL routines:OPENSSL_internal:TLSV1_ALERT_CERTIFICATE_REQUIRED`).

use crate::js::{self, Env, Value};

use super::verify::VerifyError;

/// A failed handshake seen as the peer's disconnect (also what a server under Bun sees when the
/// client refuses its certificate).
pub(super) fn disconnected(env: Env) -> Value {
  tls_error_js(env, "ECONNRESET", "Client network socket disconnected before secure TLS connection was established")
}

/// A TLS protocol failure (`EPROTO`), worded as BoringSSL words it.
pub(super) fn protocol(env: Env, e: &rustls::Error) -> Value {
  tls_error_js(env, "EPROTO", &openssl_style(e))
}

fn openssl_style(e: &rustls::Error) -> String {
  match e {
    rustls::Error::AlertReceived(a) => {
      // BoringSSL's names and codes: `SSLV3_ALERT_` for the alerts SSLv3 had, `TLSV1_ALERT_` for
      // the rest, and the code 1000 + the alert's number.
      let n = u8::from(*a);
      let prefix = if n <= 47 && n != 21 && n != 22 { "SSLV3" } else { "TLSV1" };
      format!("error:{:08x}:SSL routines:OPENSSL_internal:{prefix}_ALERT_{}", 0x1000_0000 + 1000 + u32::from(n), snake(&format!("{a:?}")))
    }
    rustls::Error::NoCertificatesPresented => "error:100000c0:SSL routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE".into(),
    rustls::Error::NoApplicationProtocol => "error:100000ea:SSL routines:OPENSSL_internal:NO_APPLICATION_PROTOCOL".into(),
    rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
      "error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER".into()
    }
    other => format!("error:10000000:SSL routines:OPENSSL_internal:{}", other.to_string().to_uppercase().replace(' ', "_")),
  }
}

/// `CertificateRequired` → `CERTIFICATE_REQUIRED`, `UnknownCA` → `UNKNOWN_CA`.
fn snake(camel: &str) -> String {
  let mut out = String::with_capacity(camel.len() + 4);
  let mut prev_lower = false;
  for ch in camel.chars() {
    if ch.is_ascii_uppercase() && prev_lower {
      out.push('_');
    }
    prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
    out.push(ch.to_ascii_uppercase());
  }
  out
}

fn tls_error_js(env: Env, code: &str, message: &str) -> Value {
  let mut e = std::ptr::null_mut();
  unsafe { napi::sys::napi_create_error(env, std::ptr::null_mut(), js::string(env, message), &mut e) };
  let _ = js::set(env, e, "code", js::string(env, code));
  let _ = js::set(env, e, "errno", js::number(env, 0.0));
  e
}

pub(crate) fn verify_error_js(env: Env, v: &VerifyError) -> Value {
  tls_error_js(env, v.code, &v.message)
}
