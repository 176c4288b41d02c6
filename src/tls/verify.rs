//! Certificate verification with Node's error codes.
//!
//! rustls's WebPKI verifiers do the real work (chain, signatures, names, validity); these
//! wrappers translate a failure into the `code`/`message` Node and Bun report
//! (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `DEPTH_ZERO_SELF_SIGNED_CERT`,
//! `ERR_TLS_CERT_ALTNAME_INVALID`, `CERT_HAS_EXPIRED`, ...) and record it for the connection.
//! With `rejectUnauthorized: false` the failure is recorded but the handshake goes on.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// A verification failure as Node names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifyError {
  pub code: &'static str,
  pub message: String,
}

impl VerifyError {
  pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
    VerifyError { code, message: message.into() }
  }
}

thread_local! {
  /// The verdict of the verification that ran last on this thread. Verifiers are shared by
  /// many connections (rustls only resumes sessions verified by the same verifier), and run
  /// synchronously inside the session call the reactor makes for one connection, which takes
  /// the verdict right after (`take_verdict`).
  static VERDICT: RefCell<Option<VerifyError>> = const { RefCell::new(None) };
}

fn record(v: VerifyError) {
  VERDICT.with(|c| *c.borrow_mut() = Some(v));
}

/// The verdict left by the last verification on this thread, if it failed.
pub(crate) fn take_verdict() -> Option<VerifyError> {
  VERDICT.with(|c| c.borrow_mut().take())
}

fn is_self_signed(cert: &CertificateDer<'_>) -> bool {
  x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, c)| c.subject() == c.issuer())
}

/// Node's code and message for a rustls certificate error.
pub(crate) fn node_error(e: &Error, leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], host: &str) -> VerifyError {
  match e {
    Error::InvalidCertificate(ce) => match ce {
      // A self-signed leaf that is not itself trusted: whatever webpki tripped on while looking
      // for an issuer (unknown issuer, a same-named root with another key, CA-as-end-entity).
      CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::Other(_) if is_self_signed(leaf) => {
        VerifyError::new("DEPTH_ZERO_SELF_SIGNED_CERT", "self signed certificate")
      }
      // As OpenSSL names it: a presented chain that ends in a self-signed (untrusted) root, or
      // one whose last certificate's issuer is nowhere; just the leaf: its issuer is unknown.
      CertificateError::UnknownIssuer if !intermediates.is_empty() => {
        if intermediates.iter().any(is_self_signed) {
          VerifyError::new("SELF_SIGNED_CERT_IN_CHAIN", "self signed certificate in certificate chain")
        } else {
          VerifyError::new("UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "unable to get local issuer certificate")
        }
      }
      CertificateError::UnknownIssuer => {
        VerifyError::new("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate")
      }
      CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
        VerifyError::new(
          "ERR_TLS_CERT_ALTNAME_INVALID",
          format!("Hostname/IP does not match certificate's altnames: {}", super::cert::name_mismatch_reason(leaf.as_ref(), host)),
        )
      }
      CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
        VerifyError::new("CERT_HAS_EXPIRED", "certificate has expired")
      }
      CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
        VerifyError::new("CERT_NOT_YET_VALID", "certificate is not yet valid")
      }
      CertificateError::Revoked => VerifyError::new("CERT_REVOKED", "certificate revoked"),
      CertificateError::UnknownRevocationStatus => VerifyError::new("UNABLE_TO_GET_CRL", "unable to get certificate CRL"),
      CertificateError::ExpiredRevocationList | CertificateError::ExpiredRevocationListContext { .. } => {
        VerifyError::new("CRL_HAS_EXPIRED", "CRL has expired")
      }
      other => VerifyError::new("UNABLE_TO_VERIFY_LEAF_SIGNATURE", format!("certificate verify failed: {other:?}")),
    },
    other => VerifyError::new("EPROTO", other.to_string()),
  }
}

#[derive(Debug)]
pub(crate) struct ServerVerifier {
  pub inner: Arc<rustls::client::WebPkiServerVerifier>,
  pub reject_unauthorized: bool,
  /// The `ca` certificates when the option is given (empty: the system roots).
  pub trusted: Vec<CertificateDer<'static>>,
}

/// Whether the chain from `leaf` (through the presented `intermediates` and the `trusted`
/// certificates, matched by name) reaches a self-signed trusted certificate. OpenSSL, and so Node
/// and Bun, trusts nothing less; webpki takes any trusted certificate as an anchor, so trusting
/// an intermediate alone would let its leaves through.
fn ends_at_trusted_root(leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], trusted: &[CertificateDer<'static>]) -> bool {
  fn parse(c: &[u8]) -> Option<x509_parser::certificate::X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(c).ok().map(|(_, c)| c)
  }
  let trusted: Vec<_> = trusted.iter().filter_map(|c| parse(c.as_ref())).collect();
  let presented: Vec<_> = intermediates.iter().filter_map(|c| parse(c.as_ref())).collect();
  let Some(mut cur) = parse(leaf.as_ref()) else { return false };
  for _ in 0..16 {
    if let Some(t) = trusted.iter().find(|t| t.subject() == cur.issuer()) {
      if t.subject() == t.issuer() {
        return true;
      }
      cur = t.clone();
      continue;
    }
    match presented.iter().find(|i| i.subject() == cur.issuer() && i.subject() != i.issuer()) {
      Some(i) => cur = i.clone(),
      None => return false,
    }
  }
  false
}

/// Node's fallback for certificates without a subjectAltName extension (`tls.checkServerIdentity`):
/// a DNS name is checked against the subject's CN (exactly, or one label for a leading `*.`).
/// webpki only looks at SANs.
fn cn_matches(cert: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
  let ServerName::DnsName(host) = name else { return false };
  let host = host.as_ref().trim_end_matches('.').to_ascii_lowercase();
  let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else { return false };
  if c.extensions().iter().any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME) {
    return false;
  }
  let matched = c.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).any(|cn| {
    let cn = cn.trim_end_matches('.').to_ascii_lowercase();
    match cn.strip_prefix("*.") {
      Some(rest) => host.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
      None => cn == host,
    }
  });
  matched
}

/// A trusted certificate presented as the server's own (a self-signed one given as `ca`):
/// OpenSSL accepts it directly, webpki refuses a CA certificate as an end entity. Its name and
/// validity still count.
fn check_trusted_leaf(leaf: &CertificateDer<'_>, name: &ServerName<'_>, now: UnixTime) -> Result<(), Error> {
  let parsed = rustls::server::ParsedCertificate::try_from(leaf)?;
  if !cn_matches(leaf, name) {
    rustls::client::verify_server_name(&parsed, name)?;
  }
  let valid = x509_parser::parse_x509_certificate(leaf.as_ref()).is_ok_and(|(_, c)| {
    x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64).is_ok_and(|t| c.validity().is_valid_at(t))
  });
  if valid {
    Ok(())
  } else {
    Err(Error::InvalidCertificate(CertificateError::Expired))
  }
}

impl ServerCertVerifier for ServerVerifier {
  fn verify_server_cert(
    &self,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    ocsp: &[u8],
    now: UnixTime,
  ) -> Result<ServerCertVerified, Error> {
    let checked = match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
      Ok(v) if self.trusted.is_empty() || ends_at_trusted_root(end_entity, intermediates, &self.trusted) => Ok(v),
      Ok(_) => {
        record(VerifyError::new("UNABLE_TO_GET_ISSUER_CERT", "unable to get issuer certificate"));
        return if self.reject_unauthorized { Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)) } else { Ok(ServerCertVerified::assertion()) };
      }
      Err(Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::Other(_) | CertificateError::BadSignature))
        if self.trusted.iter().any(|t| t.as_ref() == end_entity.as_ref()) =>
      {
        check_trusted_leaf(end_entity, server_name, now).map(|()| ServerCertVerified::assertion())
      }
      Err(Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }))
        if cn_matches(end_entity, server_name) =>
      {
        // rustls checks the name last: the chain, validity and revocation passed.
        if self.trusted.is_empty() || ends_at_trusted_root(end_entity, intermediates, &self.trusted) {
          Ok(ServerCertVerified::assertion())
        } else {
          Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
      }
      Err(e) => Err(e),
    };
    match checked {
      Ok(v) => Ok(v),
      Err(e) => {
        let host = match server_name {
          ServerName::DnsName(d) => d.as_ref().to_string(),
          ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
          _ => String::new(),
        };
        record(node_error(&e, end_entity, intermediates, &host));
        if self.reject_unauthorized {
          Err(e)
        } else {
          Ok(ServerCertVerified::assertion())
        }
      }
    }
  }

  fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
    self.inner.verify_tls12_signature(m, c, d)
  }

  fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
    self.inner.verify_tls13_signature(m, c, d)
  }

  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.inner.supported_verify_schemes()
  }
}

#[derive(Debug)]
pub(crate) struct ClientVerifier {
  pub inner: Arc<dyn ClientCertVerifier>,
  pub reject_unauthorized: bool,
}

impl ClientCertVerifier for ClientVerifier {
  fn root_hint_subjects(&self) -> &[DistinguishedName] {
    self.inner.root_hint_subjects()
  }

  fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], now: UnixTime) -> Result<ClientCertVerified, Error> {
    match self.inner.verify_client_cert(end_entity, intermediates, now) {
      Ok(v) => Ok(v),
      Err(e) => {
        record(node_error(&e, end_entity, intermediates, ""));
        if self.reject_unauthorized {
          Err(e)
        } else {
          Ok(ClientCertVerified::assertion())
        }
      }
    }
  }

  fn offer_client_auth(&self) -> bool {
    true
  }

  fn client_auth_mandatory(&self) -> bool {
    self.reject_unauthorized
  }

  fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
    self.inner.verify_tls12_signature(m, c, d)
  }

  fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
    self.inner.verify_tls13_signature(m, c, d)
  }

  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.inner.supported_verify_schemes()
  }
}
