//! X.509 certificates in Node's object shape (`getPeerCertificate()`, `getCertificate()`):
//! `subject`, `issuer`, `subjectaltname`, `infoAccess`, `modulus`/`exponent`/`bits` (RSA) or
//! `bits`/`asn1Curve`/`nistCurve` (EC), `pubkey`, `valid_from`/`valid_to`, `fingerprint`,
//! `fingerprint256`, `fingerprint512`, `ext_key_usage`, `serialNumber`, `raw`, `ca`.

use napi::sys;
use sha1::Digest as _;
use x509_parser::prelude::*;

use crate::js::{self, Env, Value};

fn hex_colon(bytes: &[u8]) -> String {
  bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn hex(bytes: &[u8]) -> String {
  bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `{ CN: ..., O: ... }` with a null prototype, as Node builds it.
fn name(env: Env, n: &X509Name<'_>) -> Value {
  let mut obj = js::object(env);
  if let Ok(ctor) = js::get(env, js::global(env), "Object") {
    if let Ok(create) = js::get(env, ctor, "create") {
      if let js::Called::Returned(o) = js::call(env, ctor, create, &[js::null(env)]) {
        obj = o;
      }
    }
  }
  // OpenSSL's short names; an attribute that occurs more than once (DC=example, DC=com) is an
  // array of its values, as in Node.
  let mut seen: Vec<(&str, Vec<String>)> = Vec::new();
  for attr in n.iter_attributes() {
    let key = match attr.attr_type().to_id_string().as_str() {
      "2.5.4.3" => "CN",
      "2.5.4.4" => "SN",
      "2.5.4.5" => "serialNumber",
      "2.5.4.6" => "C",
      "2.5.4.7" => "L",
      "2.5.4.8" => "ST",
      "2.5.4.9" => "street",
      "2.5.4.10" => "O",
      "2.5.4.11" => "OU",
      "2.5.4.12" => "title",
      "2.5.4.15" => "businessCategory",
      "2.5.4.17" => "postalCode",
      "2.5.4.42" => "GN",
      "2.5.4.43" => "initials",
      "2.5.4.44" => "generationQualifier",
      "2.5.4.46" => "dnQualifier",
      "2.5.4.65" => "pseudonym",
      "0.9.2342.19200300.100.1.1" => "UID",
      "0.9.2342.19200300.100.1.25" => "DC",
      "1.2.840.113549.1.9.1" => "emailAddress",
      _ => continue,
    };
    let Ok(v) = attr.as_str() else { continue };
    match seen.iter_mut().find(|(k, _)| *k == key) {
      Some((_, vs)) => vs.push(v.to_string()),
      None => seen.push((key, vec![v.to_string()])),
    }
  }
  for (key, values) in seen {
    let value = match values.as_slice() {
      [one] => js::string(env, one),
      many => {
        let mut arr = std::ptr::null_mut();
        unsafe { napi::sys::napi_create_array(env, &mut arr) };
        for (i, v) in many.iter().enumerate() {
          unsafe { napi::sys::napi_set_element(env, arr, i as u32, js::string(env, v)) };
        }
        arr
      }
    };
    let _ = js::set(env, obj, key, value);
  }
  obj
}

fn time(t: &ASN1Time) -> String {
  let d = t.to_datetime();
  const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  let m = MONTHS.get(usize::from(u8::from(d.month())).saturating_sub(1)).copied().unwrap_or("Jan");
  format!("{m} {:>2} {:02}:{:02}:{:02} {} GMT", d.day(), d.hour(), d.minute(), d.second(), d.year())
}

fn alt_names(c: &X509Certificate<'_>) -> Option<String> {
  let san = c.subject_alternative_name().ok()??;
  let parts: Vec<String> = san
    .value
    .general_names
    .iter()
    .map(|g| match g {
      GeneralName::DNSName(d) => format!("DNS:{d}"),
      GeneralName::RFC822Name(e) => format!("email:{e}"),
      GeneralName::URI(u) => format!("URI:{u}"),
      GeneralName::IPAddress(ip) if ip.len() == 4 => format!("IP Address:{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]),
      GeneralName::IPAddress(ip) if ip.len() == 16 => {
        let words: Vec<String> = ip.chunks(2).map(|w| format!("{:X}", u16::from_be_bytes([w[0], w[1]]))).collect();
        format!("IP Address:{}", words.join(":"))
      }
      other => format!("{other:?}"),
    })
    .collect();
  Some(parts.join(", "))
}

/// Why `host` does not match `der`, worded as Node's `tls.checkServerIdentity` words it (the part
/// after "Hostname/IP does not match certificate's altnames: ").
pub(crate) fn name_mismatch_reason(der: &[u8], host: &str) -> String {
  let parsed = parse_x509_certificate(der).ok().map(|(_, c)| c);
  if let Ok(ip) = host.parse::<std::net::IpAddr>() {
    let ips: Vec<String> = parsed
      .as_ref()
      .and_then(|c| c.subject_alternative_name().ok().flatten())
      .map(|san| {
        san
          .value
          .general_names
          .iter()
          .filter_map(|g| match g {
            GeneralName::IPAddress(b) if b.len() == 4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
            GeneralName::IPAddress(b) => <[u8; 16]>::try_from(*b).ok().map(|a| std::net::Ipv6Addr::from(a).to_string()),
            _ => None,
          })
          .collect()
      })
      .unwrap_or_default();
    return format!("IP: {ip} is not in the cert's list: {}", ips.join(", "));
  }
  match parsed.as_ref().and_then(alt_names) {
    Some(names) => format!("Host: {host}. is not in the cert's altnames: {names}"),
    None => {
      let cn = parsed.as_ref().and_then(|c| c.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok().map(str::to_string)));
      format!("Host: {host}. is not cert's CN: {}", cn.unwrap_or_default())
    }
  }
}

/// Whether `der` names itself as its issuer.
pub(crate) fn is_self_issued(der: &[u8]) -> bool {
  parse_x509_certificate(der).is_ok_and(|(_, c)| c.subject() == c.issuer())
}

/// The certificate `der` as Node's certificate object (`undefined` if it does not parse).
pub(crate) fn to_js(env: Env, der: &[u8]) -> Value {
  let Ok((_, c)) = parse_x509_certificate(der) else { return js::undefined(env) };
  let o = js::object(env);
  let set = |k: &'static str, v: Value| {
    let _ = js::set(env, o, k, v);
  };
  set("subject", name(env, c.subject()));
  set("issuer", name(env, c.issuer()));
  set("subjectaltname", alt_names(&c).map_or_else(|| js::undefined(env), |s| js::string(env, &s)));
  set("infoAccess", js::undefined(env));
  let spki = c.public_key();
  match spki.parsed() {
    Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
      let modulus = rsa.modulus.iter().skip_while(|b| **b == 0).copied().collect::<Vec<_>>();
      set("bits", js::number(env, (modulus.len() * 8) as f64));
      set("modulus", js::string(env, &hex(&modulus)));
      let e = rsa.exponent.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
      set("exponent", js::string(env, &format!("0x{e:x}")));
    }
    Ok(x509_parser::public_key::PublicKey::EC(ec)) => {
      set("bits", js::number(env, (ec.key_size()) as f64));
    }
    _ => {}
  }
  set("pubkey", js::buffer(env, spki.raw));
  set("valid_from", js::string(env, &time(&c.validity().not_before)));
  set("valid_to", js::string(env, &time(&c.validity().not_after)));
  set("fingerprint", js::string(env, &hex_colon(&sha1::Sha1::digest(der))));
  set("fingerprint256", js::string(env, &hex_colon(&sha2::Sha256::digest(der))));
  set("fingerprint512", js::string(env, &hex_colon(&sha2::Sha512::digest(der))));
  if let Ok(Some(eku)) = c.extended_key_usage() {
    let mut oids = Vec::new();
    if eku.value.server_auth {
      oids.push("1.3.6.1.5.5.7.3.1");
    }
    if eku.value.client_auth {
      oids.push("1.3.6.1.5.5.7.3.2");
    }
    let mut arr = std::ptr::null_mut();
    unsafe { sys::napi_create_array_with_length(env, oids.len(), &mut arr) };
    for (i, oid) in oids.iter().enumerate() {
      unsafe { sys::napi_set_element(env, arr, i as u32, js::string(env, oid)) };
    }
    set("ext_key_usage", arr);
  }
  // The serial as an unsigned number: DER's sign byte (a leading 00) is not part of it.
  let serial = c.raw_serial();
  let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len().saturating_sub(1));
  set("serialNumber", js::string(env, &hex(&serial[start..])));
  set("raw", js::buffer(env, der));
  let is_ca = c.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
  set("ca", js::boolean(env, is_ca));
  o
}
