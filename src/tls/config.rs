//! `TLSOptions` → rustls configurations (ring provider).
//!
//! Certificates and keys are parsed once, at `connect`/`listen` time, so bad PEM throws
//! synchronously as in Bun (`ERR_OSSL_PEM_NO_START_LINE`). The system trust store is loaded once
//! per process; `ca` replaces it.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::verify::{ClientVerifier, ServerVerifier};
use crate::error::ArgError;

const NO_TLSV1_2: u32 = 0x0800_0000;
const NO_TLSV1_3: u32 = 0x2000_0000;

/// The validated `tls` option.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
  pub ca: Option<Vec<CertificateDer<'static>>>,
  pub chain: Vec<CertificateDer<'static>>,
  pub key: Option<Arc<CertifiedKey>>,
  pub server_name: Option<String>,
  pub reject_unauthorized: Option<bool>,
  pub request_cert: bool,
  pub alpn: Vec<Vec<u8>>,
  pub secure_options: u32,
  /// `ciphers`: the suites (IANA codes) named in it that rustls has; `None` = all.
  pub ciphers: Option<Vec<u16>>,
  /// `crl`: revocation lists checked against the peer's leaf certificate.
  pub crls: Vec<CertificateRevocationListDer<'static>>,
}

/// OpenSSL's names (and the IANA names) of the suites rustls's ring provider offers.
const SUITES: &[(&str, &str, u16)] = &[
  ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", 0x1301),
  ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 0x1302),
  ("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", 0x1303),
  ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02B),
  ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xC02C),
  ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC02F),
  ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xC030),
  ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA8),
  ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9),
];

/// The suites an OpenSSL cipher string names (`:`, `,` or space separated; OpenSSL or IANA
/// names). Keywords and suites rustls does not have (`HIGH`, `!aNULL`, `AES128-SHA`, ...) are
/// ignored; `None` when nothing in it names a suite rustls has (then every suite stays on).
pub(crate) fn cipher_codes(list: &str) -> Option<Vec<u16>> {
  let codes: Vec<u16> = list
    .split([':', ',', ' '])
    .filter_map(|tok| SUITES.iter().find(|(o, i, _)| tok.eq_ignore_ascii_case(o) || tok.eq_ignore_ascii_case(i)).map(|s| s.2))
    .collect();
  (!codes.is_empty()).then_some(codes)
}

/// The provider restricted to `ciphers`: per protocol version, only the named suites when the
/// list names any of that version (OpenSSL's `ciphers` and `ciphersuites` split, in one string).
fn provider_for(opts: &TlsOptions) -> Arc<CryptoProvider> {
  let Some(codes) = &opts.ciphers else { return provider() };
  let mut p = (*provider()).clone();
  let is13 = |c: u16| c >> 8 == 0x13;
  let named13 = codes.iter().any(|&c| is13(c));
  let named12 = codes.iter().any(|&c| !is13(c));
  p.cipher_suites.retain(|s| {
    let c = u16::from(s.suite());
    let named = if is13(c) { named13 } else { named12 };
    !named || codes.contains(&c)
  });
  Arc::new(p)
}

/// Revocation lists from PEM sources.
pub(crate) fn crls(sources: &[Vec<u8>]) -> Result<Vec<CertificateRevocationListDer<'static>>, ArgError> {
  pem_items(sources)
}

/// ring, with AES-128-GCM preferred over AES-256-GCM (as BoringSSL/Bun and OpenSSL on AES-NI
/// hardware choose): same security margin for TLS, measurably faster bulk transfer.
fn provider() -> Arc<CryptoProvider> {
  static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
  P.get_or_init(|| {
    let mut p = rustls::crypto::ring::default_provider();
    let rank = |s: &rustls::SupportedCipherSuite| {
      let name = s.suite().as_str().unwrap_or("");
      (!name.contains("AES_128_GCM"), !name.contains("AES_256_GCM"))
    };
    p.cipher_suites.sort_by_key(rank);
    Arc::new(p)
  })
  .clone()
}

fn pem_error() -> ArgError {
  ArgError::plain("error:0900006e:PEM routines:OPENSSL_internal:NO_START_LINE").with_code("ERR_OSSL_PEM_NO_START_LINE")
}

/// Every `T` in PEM sources (each may hold several; each must hold at least one).
fn pem_items<T: PemObject>(sources: &[Vec<u8>]) -> Result<Vec<T>, ArgError> {
  let mut out = Vec::new();
  for s in sources {
    let before = out.len();
    for c in T::pem_slice_iter(s) {
      out.push(c.map_err(|_| pem_error())?);
    }
    if out.len() == before {
      return Err(pem_error());
    }
  }
  Ok(out)
}

/// Certificates from PEM sources.
pub(crate) fn certs(sources: &[Vec<u8>]) -> Result<Vec<CertificateDer<'static>>, ArgError> {
  pem_items(sources)
}

/// An encrypted PKCS#8 key (`BEGIN ENCRYPTED PRIVATE KEY`) decrypted with `passphrase`.
fn decrypt_key(pem: &[u8], passphrase: Option<&str>) -> Option<Result<PrivateKeyDer<'static>, ArgError>> {
  let text = std::str::from_utf8(pem).ok()?;
  if !text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
    return None;
  }
  let bad = || ArgError::plain("error:1C800064:Provider routines::bad decrypt").with_code("ERR_OSSL_BAD_DECRYPT");
  let Some(pass) = passphrase else { return Some(Err(bad())) };
  let result = (|| {
    let (_, doc) = pkcs8::der::Document::from_pem(text.trim()).map_err(|_| pem_error())?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|_| pem_error())?;
    let plain = info.decrypt(pass.as_bytes()).map_err(|_| bad())?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
  })();
  Some(result)
}

/// The private key (first PEM key found, decrypted with `passphrase` if encrypted) bound to
/// `chain`.
pub(crate) fn certified_key(chain: Vec<CertificateDer<'static>>, keys: &[Vec<u8>], passphrase: Option<&str>) -> Result<Arc<CertifiedKey>, ArgError> {
  let mut found = None;
  for k in keys {
    if let Some(d) = decrypt_key(k, passphrase) {
      found = Some(d?);
      break;
    }
    if let Ok(d) = PrivateKeyDer::from_pem_slice(k) {
      found = Some(d);
      break;
    }
  }
  let der = found.ok_or_else(pem_error)?;
  let signing = provider()
    .key_provider
    .load_private_key(der)
    .map_err(|e| ArgError::plain(format!("Invalid private key: {e}")).with_code("ERR_OSSL_UNSUPPORTED"))?;
  Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// ALPN protocols from Bun's wire format (`"\x02h2\x08http/1.1"`).
pub(crate) fn alpn_wire(bytes: &[u8]) -> Vec<Vec<u8>> {
  let mut out = Vec::new();
  let mut rest = bytes;
  while let Some((&len, tail)) = rest.split_first() {
    let len = usize::from(len);
    if len == 0 || tail.len() < len {
      break;
    }
    out.push(tail[..len].to_vec());
    rest = &tail[len..];
  }
  out
}

fn versions(secure_options: u32) -> Vec<&'static SupportedProtocolVersion> {
  let mut v = Vec::new();
  if secure_options & NO_TLSV1_3 == 0 {
    v.push(&rustls::version::TLS13);
  }
  if secure_options & NO_TLSV1_2 == 0 {
    v.push(&rustls::version::TLS12);
  }
  if v.is_empty() {
    v.push(&rustls::version::TLS13);
  }
  v
}

fn system_roots() -> Arc<RootCertStore> {
  static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
  ROOTS
    .get_or_init(|| {
      let mut store = RootCertStore::empty();
      for c in rustls_native_certs::load_native_certs().certs {
        let _ = store.add(c);
      }
      if store.is_empty() {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
      }
      Arc::new(store)
    })
    .clone()
}

fn roots(ca: &Option<Vec<CertificateDer<'static>>>) -> Arc<RootCertStore> {
  match ca {
    None => system_roots(),
    Some(certs) => {
      let mut store = RootCertStore::empty();
      for c in certs {
        let _ = store.add(c.clone());
      }
      Arc::new(store)
    }
  }
}

/// `rejectUnauthorized` for clients: the option, else `NODE_TLS_REJECT_UNAUTHORIZED`, else true.
pub(crate) fn client_rejects(opts: &TlsOptions) -> bool {
  opts.reject_unauthorized.unwrap_or_else(|| std::env::var("NODE_TLS_REJECT_UNAUTHORIZED").map_or(true, |v| v != "0"))
}

/// The client configuration for `opts`, cached per thread by content: rustls resumes a session
/// only under the verifier (and client-certificate resolver) that established it, so connections
/// with the same options must share one configuration. Per-connection state (the verification
/// verdict, the session slot) travels through thread-locals set around each rustls call.
pub(crate) fn client(opts: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
  use std::hash::{Hash, Hasher};
  thread_local! {
    static CACHE: std::cell::RefCell<std::collections::HashMap<u64, Arc<ClientConfig>>> = Default::default();
  }
  let mut h = std::collections::hash_map::DefaultHasher::new();
  opts.ca.as_ref().map(|v| v.iter().map(|c| c.as_ref().to_vec()).collect::<Vec<_>>()).hash(&mut h);
  opts.chain.iter().map(|c| c.as_ref().to_vec()).collect::<Vec<_>>().hash(&mut h);
  (client_rejects(opts), &opts.alpn, opts.secure_options, &opts.ciphers).hash(&mut h);
  opts.crls.iter().map(|c| c.as_ref().to_vec()).collect::<Vec<_>>().hash(&mut h);
  let key = h.finish();
  if let Some(c) = CACHE.with(|m| m.borrow().get(&key).cloned()) {
    return Ok(c);
  }
  let mut vb = rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&opts.ca), provider_for(opts));
  if !opts.crls.is_empty() {
    // As OpenSSL with a CRL (X509_V_FLAG_CRL_CHECK): the leaf is checked, and a leaf whose
    // issuer has no CRL here fails (UNABLE_TO_GET_CRL).
    vb = vb.with_crls(opts.crls.clone()).only_check_end_entity_revocation();
  }
  let inner = vb.build().map_err(|e| e.to_string())?;
  let verifier = Arc::new(ServerVerifier { inner, reject_unauthorized: client_rejects(opts), trusted: opts.ca.clone().unwrap_or_default() });
  let builder = ClientConfig::builder_with_provider(provider_for(opts))
    .with_protocol_versions(&versions(opts.secure_options))
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(verifier);
  let mut cfg = match &opts.key {
    Some(k) => builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(k.clone()))),
    None => builder.with_no_client_auth(),
  };
  cfg.alpn_protocols = opts.alpn.clone();
  cfg.enable_sni = true;
  cfg.resumption = rustls::client::Resumption::store(Arc::new(super::session::Store));
  cfg.key_log = Arc::new(super::watch::KeyCapture);
  let cfg = Arc::new(cfg);
  CACHE.with(|m| {
    let mut m = m.borrow_mut();
    if m.len() >= 64 {
      m.clear();
    }
    m.insert(key, cfg.clone());
  });
  Ok(cfg)
}

/// Serves the listener's one certificate (none: every handshake fails, as Bun's `tls: true`).
#[derive(Debug)]
struct OneCert(Option<Arc<CertifiedKey>>);

impl ResolvesServerCert for OneCert {
  fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
    self.0.clone()
  }
}

/// A listener's server configuration (shared by its connections, so sessions resume).
pub(crate) fn server(opts: &TlsOptions) -> Result<Arc<ServerConfig>, String> {
  let builder = ServerConfig::builder_with_provider(provider_for(opts))
    .with_protocol_versions(&versions(opts.secure_options))
    .map_err(|e| e.to_string())?;
  let builder = match opts.request_cert {
    true => {
      let mut vb = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&opts.ca), provider_for(opts)).allow_unauthenticated();
      if !opts.crls.is_empty() {
        vb = vb.with_crls(opts.crls.clone()).only_check_end_entity_revocation();
      }
      let inner = vb.build().map_err(|e| e.to_string())?;
      let reject = opts.reject_unauthorized.unwrap_or(true);
      builder.with_client_cert_verifier(Arc::new(ClientVerifier { inner, reject_unauthorized: reject }))
    }
    false => builder.with_no_client_auth(),
  };
  let mut cfg = builder.with_cert_resolver(Arc::new(OneCert(opts.key.clone())));
  if opts.request_cert {
    // A resumed handshake does not verify the client's certificate again and rustls keeps no
    // verdict with the session: a client whose certificate failed would come back authorized.
    // Every handshake of a server that asks for certificates is a full one.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
  }
  cfg.alpn_protocols = opts.alpn.clone();
  cfg.key_log = Arc::new(super::watch::KeyCapture);
  Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn cipher_strings() {
    assert_eq!(cipher_codes("ECDHE-RSA-AES256-GCM-SHA384:HIGH:!aNULL"), Some(vec![0xC030]));
    assert_eq!(cipher_codes("tls_chacha20_poly1305_sha256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), Some(vec![0x1303, 0xC02F]));
    assert_eq!(cipher_codes("HIGH:!aNULL:!MD5"), None);
    assert_eq!(cipher_codes("AES128-SHA"), None);
  }

  #[test]
  fn alpn_wire_format() {
    assert_eq!(alpn_wire(b"\x02h2\x08http/1.1"), vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(alpn_wire(b"\x05h2"), Vec::<Vec<u8>>::new());
  }
}
