//! Record protection keys derived from the secrets rustls logs (`KeyLog`), so that
//! [`super::watch`] can open the few records that carry what rustls keeps to itself (TLS 1.2
//! Finished messages, TLS 1.3 session tickets). RFC 8446 §7 (TLS 1.3 key schedule, record
//! nonces), RFC 5246 §5/§6.3 and RFC 5288/7905 (TLS 1.2 PRF, key block, AEAD records).

use ring::{aead, hkdf, hmac};

/// The hash and AEAD of a cipher suite (by IANA code), and whether it is a TLS 1.3 suite.
#[derive(Clone, Copy)]
pub(crate) struct Suite {
  aead: &'static aead::Algorithm,
  sha384: bool,
  pub tls13: bool,
}

impl Suite {
  pub(crate) fn from_code(code: u16) -> Option<Suite> {
    let (aead, sha384, tls13) = match code {
      0x1301 => (&aead::AES_128_GCM, false, true),
      0x1302 => (&aead::AES_256_GCM, true, true),
      0x1303 => (&aead::CHACHA20_POLY1305, false, true),
      0xC02B | 0xC02F => (&aead::AES_128_GCM, false, false),
      0xC02C | 0xC030 => (&aead::AES_256_GCM, true, false),
      0xCCA8 | 0xCCA9 => (&aead::CHACHA20_POLY1305, false, false),
      _ => return None,
    };
    Some(Suite { aead, sha384, tls13 })
  }

  fn chacha(&self) -> bool {
    std::ptr::eq(self.aead, &aead::CHACHA20_POLY1305)
  }
}

/// One direction's record protection, with its sequence number.
pub(crate) struct RecordKey {
  key: aead::LessSafeKey,
  iv: [u8; 12],
  seq: u64,
  /// TLS 1.2 AES-GCM: 4 fixed bytes of the nonce here, 8 explicit bytes in each record.
  explicit_nonce: bool,
  tls13: bool,
}

struct Len(usize);

impl hkdf::KeyType for Len {
  fn len(&self) -> usize {
    self.0
  }
}

/// HKDF-Expand-Label(secret, label, "", len) (RFC 8446 §7.1).
fn expand_label(suite: Suite, secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
  let alg = if suite.sha384 { hkdf::HKDF_SHA384 } else { hkdf::HKDF_SHA256 };
  let prk = hkdf::Prk::new_less_safe(alg, secret);
  let len = (out.len() as u16).to_be_bytes();
  let label_len = [(6 + label.len()) as u8];
  let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
  prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// The TLS 1.2 PRF, P_SHA256 or P_SHA384 (RFC 5246 §5).
fn prf(suite: Suite, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
  let alg = if suite.sha384 { hmac::HMAC_SHA384 } else { hmac::HMAC_SHA256 };
  let key = hmac::Key::new(alg, secret);
  let mut ls = label.to_vec();
  ls.extend_from_slice(seed);
  let mut a = hmac::sign(&key, &ls);
  let mut filled = 0;
  while filled < out.len() {
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(a.as_ref());
    ctx.update(&ls);
    let block = ctx.sign();
    let n = block.as_ref().len().min(out.len() - filled);
    out[filled..filled + n].copy_from_slice(&block.as_ref()[..n]);
    filled += n;
    a = hmac::sign(&key, a.as_ref());
  }
}

impl RecordKey {
  fn new(suite: Suite, key: &[u8], iv: [u8; 12], explicit_nonce: bool) -> Option<RecordKey> {
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(suite.aead, key).ok()?);
    Some(RecordKey { key, iv, seq: 0, explicit_nonce, tls13: suite.tls13 })
  }

  /// A TLS 1.3 traffic key from one of the traffic secrets.
  pub(crate) fn tls13(suite: Suite, secret: &[u8]) -> Option<RecordKey> {
    let mut key = vec![0u8; suite.aead.key_len()];
    let mut iv = [0u8; 12];
    expand_label(suite, secret, b"key", &mut key)?;
    expand_label(suite, secret, b"iv", &mut iv)?;
    RecordKey::new(suite, &key, iv, false)
  }

  /// TLS 1.2: (client write key, server write key) from the master secret and both randoms.
  pub(crate) fn tls12(suite: Suite, master: &[u8], client_random: &[u8], server_random: &[u8]) -> Option<(RecordKey, RecordKey)> {
    let key_len = suite.aead.key_len();
    let iv_len = if suite.chacha() { 12 } else { 4 };
    let mut block = vec![0u8; 2 * (key_len + iv_len)];
    let seed = [server_random, client_random].concat();
    prf(suite, master, b"key expansion", &seed, &mut block);
    let (ck, rest) = block.split_at(key_len);
    let (sk, rest) = rest.split_at(key_len);
    let (civ, siv) = rest.split_at(iv_len);
    let iv = |b: &[u8]| {
      let mut v = [0u8; 12];
      v[..b.len()].copy_from_slice(b);
      v
    };
    let explicit = !suite.chacha();
    Some((RecordKey::new(suite, ck, iv(civ), explicit)?, RecordKey::new(suite, sk, iv(siv), explicit)?))
  }

  /// Opens one record (`header` is its 5-byte header): the plaintext and its content type.
  pub(crate) fn open(&mut self, header: &[u8; 5], payload: &[u8]) -> Option<(u8, Vec<u8>)> {
    let tag = self.key.algorithm().tag_len();
    let seq = self.seq.to_be_bytes();
    self.seq += 1;
    let mut nonce = self.iv;
    let body = if self.explicit_nonce {
      if payload.len() < 8 + tag {
        return None;
      }
      nonce[4..].copy_from_slice(&payload[..8]);
      &payload[8..]
    } else {
      for (n, s) in nonce[4..].iter_mut().zip(seq) {
        *n ^= s;
      }
      payload
    };
    let plain_len = body.len().checked_sub(tag)?;
    let mut aad13 = *header;
    let mut aad12 = [0u8; 13];
    let aad: &[u8] = if self.tls13 {
      aad13[3..5].copy_from_slice(&(payload.len() as u16).to_be_bytes());
      &aad13
    } else {
      aad12[..8].copy_from_slice(&seq);
      aad12[8..11].copy_from_slice(&header[..3]);
      aad12[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
      &aad12
    };
    let mut buf = body.to_vec();
    let plain = self.key.open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut buf).ok()?;
    let n = plain.len();
    buf.truncate(n);
    if !self.tls13 {
      return Some((header[0], buf));
    }
    // TLSInnerPlaintext: content, then the real type, then zero padding.
    let end = buf.iter().rposition(|&b| b != 0)?;
    let ty = buf[end];
    buf.truncate(end);
    Some((ty, buf))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tls12_prf_sha256_vector() -> Result<(), &'static str> {
    // The widely used P_SHA256 test vector (from the IETF TLS mailing list, 2009).
    let secret = [0x9b, 0xbe, 0x43, 0x6b, 0xa9, 0x40, 0xf0, 0x17, 0xb1, 0x76, 0x52, 0x84, 0x9a, 0x71, 0xdb, 0x35];
    let seed = [0xa0, 0xba, 0x9f, 0x93, 0x6c, 0xda, 0x31, 0x18, 0x27, 0xa6, 0xf7, 0x96, 0xff, 0xd5, 0x19, 0x8c];
    let suite = Suite::from_code(0xC02F).ok_or("no suite 0xC02F")?;
    let mut out = [0u8; 16];
    prf(suite, &secret, b"test label", &seed, &mut out);
    assert_eq!(out, [0xe3, 0xf2, 0x29, 0xba, 0x72, 0x7b, 0xe1, 0x7b, 0x8d, 0x12, 0x26, 0x20, 0x55, 0x7c, 0xd4, 0x53]);
    Ok(())
  }
}
