//! What rustls keeps to itself, read off the wire: the TLS 1.2 Finished messages
//! (`getTLSFinishedMessage()`/`getTLSPeerFinishedMessage()`) and the client's session ticket
//! (`getTLSTicket()`).
//!
//! A [`Watch`] sees a copy of the ciphertext in both directions while the handshake runs (and,
//! on a TLS 1.3 client, for a few records after it, where the server's NewSessionTicket comes).
//! Plaintext records give the randoms, the cipher suite and TLS 1.2 tickets; the secrets rustls
//! reports through its `KeyLog` hook (captured only around this connection's own calls into the
//! session) open the few encrypted records that matter: the first one after ChangeCipherSpec in
//! TLS 1.2 (Finished), and TLS 1.3 handshake/application records up to the ticket. Then the
//! watch is dropped: bulk traffic never passes through it.

use std::cell::RefCell;

use super::keys::{RecordKey, Suite};

/// (KeyLog label, secret) pairs.
type Secrets = Vec<(&'static str, Vec<u8>)>;

thread_local! {
  /// Secrets logged by rustls while a watched connection is inside the session.
  static LOGGED: RefCell<Option<Secrets>> = const { RefCell::new(None) };
}

/// The `KeyLog` of every bunnet config: forwards secrets to [`capturing`], and asks for none
/// when no watched connection is running.
#[derive(Debug)]
pub(crate) struct KeyCapture;

impl rustls::KeyLog for KeyCapture {
  fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
    let label = match label {
      "CLIENT_RANDOM" => "CLIENT_RANDOM",
      "SERVER_HANDSHAKE_TRAFFIC_SECRET" => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
      "SERVER_TRAFFIC_SECRET_0" => "SERVER_TRAFFIC_SECRET_0",
      _ => return,
    };
    LOGGED.with(|l| {
      if let Ok(mut l) = l.try_borrow_mut() {
        if let Some(v) = l.as_mut() {
          v.push((label, secret.to_vec()));
        }
      }
    });
  }

  fn will_log(&self, label: &str) -> bool {
    matches!(label, "CLIENT_RANDOM" | "SERVER_HANDSHAKE_TRAFFIC_SECRET" | "SERVER_TRAFFIC_SECRET_0")
      && LOGGED.with(|l| l.try_borrow().is_ok_and(|l| l.is_some()))
  }
}

/// Runs `f` (a call into the session) with secret capture on; hands the secrets to `w`.
pub(crate) fn capturing<R>(w: &mut Option<Box<Watch>>, f: impl FnOnce() -> R) -> R {
  if w.is_none() {
    return f();
  }
  let outer = LOGGED.with(|l| l.replace(Some(Vec::new())));
  let r = f();
  let logged = LOGGED.with(|l| l.replace(outer)).unwrap_or_default();
  if let Some(w) = w.as_mut() {
    w.secrets.extend(logged);
  }
  r
}

/// Ciphertext buffered beyond this means something is off: the watch gives up.
const MAX_BUFFERED: usize = 256 * 1024;
/// TLS 1.3 client: application records inspected after the handshake for a ticket (the watch
/// stops at the first ticket).
const TICKET_WINDOW: u32 = 8;

#[derive(Default)]
struct Stream {
  /// Bytes not yet parsed into records.
  buf: Vec<u8>,
  /// Handshake message bytes not yet parsed into messages.
  hs: Vec<u8>,
  /// TLS 1.2: ChangeCipherSpec seen, the next record is the (encrypted) Finished.
  ccs: bool,
  key: Option<RecordKey>,
  /// TLS 1.3 inbound (client): the server's Finished has passed; records are application ones.
  app: bool,
  app_records: u32,
  done: bool,
}

pub(crate) struct Watch {
  server: bool,
  /// From the peer.
  inbound: Stream,
  /// To the peer.
  outbound: Stream,
  client_random: Option<Vec<u8>>,
  server_random: Option<Vec<u8>>,
  suite: Option<Suite>,
  secrets: Secrets,
  /// TLS 1.2 Finished (verify_data) sent by this side / by the peer.
  pub finished: Option<Vec<u8>>,
  pub peer_finished: Option<Vec<u8>>,
  /// Client: the server's session ticket (TLS 1.3: the first one).
  pub ticket: Option<Vec<u8>>,
}

enum Dir {
  In,
  Out,
}

impl Watch {
  pub(crate) fn new(server: bool) -> Box<Watch> {
    Box::new(Watch {
      server,
      inbound: Stream::default(),
      outbound: Stream::default(),
      client_random: None,
      server_random: None,
      suite: None,
      secrets: Vec::new(),
      finished: None,
      peer_finished: None,
      ticket: None,
    })
  }

  /// Nothing left to learn: the watch can go.
  pub(crate) fn done(&self) -> bool {
    self.inbound.done && self.outbound.done
  }

  pub(crate) fn received(&mut self, bytes: &[u8]) {
    if !self.inbound.done {
      self.inbound.buf.extend_from_slice(bytes);
    }
    self.pump();
  }

  pub(crate) fn sent(&mut self, bytes: &[u8]) {
    if !self.outbound.done {
      self.outbound.buf.extend_from_slice(bytes);
    }
    self.pump();
  }

  /// Parses whatever can be parsed in both directions.
  pub(crate) fn pump(&mut self) {
    self.records(Dir::Out);
    self.records(Dir::In);
    self.records(Dir::Out);
    for s in [&mut self.inbound, &mut self.outbound] {
      if s.buf.len() > MAX_BUFFERED {
        s.done = true;
        s.buf = Vec::new();
      }
    }
  }

  fn stream(&mut self, d: &Dir) -> &mut Stream {
    match d {
      Dir::In => &mut self.inbound,
      Dir::Out => &mut self.outbound,
    }
  }

  /// Whether the records of direction `d` come from the server.
  fn sent_by_server(&self, d: &Dir) -> bool {
    matches!(d, Dir::In) != self.server
  }

  fn secret(&self, label: &str) -> Option<&[u8]> {
    self.secrets.iter().rev().find(|(l, _)| *l == label).map(|(_, s)| s.as_slice())
  }

  /// The key for the encrypted records of direction `d`, once its secrets are known.
  fn key_for(&mut self, d: &Dir) -> Option<RecordKey> {
    let suite = self.suite?;
    let from_server = self.sent_by_server(d);
    if suite.tls13 {
      let label = if self.stream(d).app { "SERVER_TRAFFIC_SECRET_0" } else { "SERVER_HANDSHAKE_TRAFFIC_SECRET" };
      return RecordKey::tls13(suite, self.secret(label)?);
    }
    let (c, s) = RecordKey::tls12(suite, self.secret("CLIENT_RANDOM")?, self.client_random.as_deref()?, self.server_random.as_deref()?)?;
    Some(if from_server { s } else { c })
  }

  fn records(&mut self, d: Dir) {
    loop {
      let s = self.stream(&d);
      if s.done || s.buf.len() < 5 {
        return;
      }
      let len = u16::from_be_bytes([s.buf[3], s.buf[4]]) as usize;
      if s.buf.len() < 5 + len {
        return;
      }
      let header: [u8; 5] = [s.buf[0], s.buf[1], s.buf[2], s.buf[3], s.buf[4]];
      let encrypted = match header[0] {
        20 => false,
        23 => true,
        _ => s.ccs || s.key.is_some(),
      };
      if encrypted && s.key.is_none() {
        match self.key_for(&d) {
          Some(k) => self.stream(&d).key = Some(k),
          // The secrets come when rustls processes what is already buffered: try again then.
          None => return,
        }
      }
      let s = self.stream(&d);
      let record: Vec<u8> = s.buf.drain(..5 + len).skip(5).collect();
      if header[0] == 20 {
        // ChangeCipherSpec: TLS 1.2 starts encrypting after it (TLS 1.3 sends it for show).
        if !self.suite.is_some_and(|x| x.tls13) {
          self.stream(&d).ccs = true;
        }
        continue;
      }
      if !encrypted {
        if header[0] == 22 {
          self.handshake_bytes(&d, &record);
        }
        continue;
      }
      let opened = self.stream(&d).key.as_mut().and_then(|k| k.open(&header, &record));
      let Some((ty, plain)) = opened else {
        // Not what was expected: stop watching this direction rather than guess.
        self.finish(&d);
        return;
      };
      if ty == 22 {
        self.handshake_bytes(&d, &plain);
      } else if ty == 23 {
        let s = self.stream(&d);
        s.app_records += 1;
        if s.app_records >= TICKET_WINDOW {
          self.finish(&d);
        }
      }
    }
  }

  fn finish(&mut self, d: &Dir) {
    let s = self.stream(d);
    s.done = true;
    s.buf = Vec::new();
    s.hs = Vec::new();
    s.key = None;
  }

  /// Handshake messages (plaintext ones, or opened from encrypted records).
  fn handshake_bytes(&mut self, d: &Dir, bytes: &[u8]) {
    self.stream(d).hs.extend_from_slice(bytes);
    loop {
      let s = self.stream(d);
      if s.hs.len() < 4 {
        return;
      }
      let len = (s.hs[1] as usize) << 16 | (s.hs[2] as usize) << 8 | s.hs[3] as usize;
      if s.hs.len() < 4 + len {
        return;
      }
      let msg: Vec<u8> = s.hs.drain(..4 + len).collect();
      self.message(d, msg[0], &msg[4..]);
      if self.stream(d).done {
        return;
      }
    }
  }

  fn message(&mut self, d: &Dir, ty: u8, body: &[u8]) {
    let from_server = self.sent_by_server(d);
    let tls13 = self.suite.map(|s| s.tls13);
    match ty {
      // ClientHello: the client random.
      1 if body.len() >= 34 => self.client_random = Some(body[2..34].to_vec()),
      // ServerHello: the server random and the suite.
      2 if body.len() >= 35 => {
        self.server_random = Some(body[2..34].to_vec());
        let at = 35 + body[34] as usize;
        if let Some(code) = body.get(at..at + 2) {
          self.suite = Suite::from_code(u16::from_be_bytes([code[0], code[1]]));
        }
        match self.suite {
          None => {
            self.finish(&Dir::In);
            self.finish(&Dir::Out);
          }
          // TLS 1.3: Finished messages are not reported (as in Bun); only a client's inbound
          // records (tickets) are of interest.
          Some(s) if s.tls13 => {
            let (other, client_in) = if self.server { (Dir::In, Dir::Out) } else { (Dir::Out, Dir::In) };
            self.finish(&other);
            if self.server {
              self.finish(&client_in);
            }
          }
          Some(_) => {}
        }
      }
      // NewSessionTicket (to a client).
      4 if from_server && !self.server => {
        let ticket = match tls13 {
          // lifetime(4) age_add(4) nonce<1> ticket<2> extensions
          Some(true) => body.get(8).and_then(|&n| {
            let at = 9 + n as usize;
            let len = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]) as usize;
            body.get(at + 2..at + 2 + len)
          }),
          // lifetime(4) ticket<2>
          _ => body.get(4..6).and_then(|l| body.get(6..6 + u16::from_be_bytes([l[0], l[1]]) as usize)),
        };
        if let Some(t) = ticket.filter(|t| !t.is_empty()) {
          self.ticket = Some(t.to_vec());
          if tls13 == Some(true) {
            // The first ticket is enough (a server may send more): stop decrypting.
            self.finish(d);
          }
        }
      }
      // Finished.
      20 => match tls13 {
        Some(true) => {
          // The server's flight ends: application records (with the tickets) follow.
          let s = self.stream(d);
          s.app = true;
          s.key = None;
          s.hs.clear();
        }
        _ => {
          let own = matches!(d, Dir::Out);
          if own {
            self.finished = Some(body.to_vec());
          } else {
            self.peer_finished = Some(body.to_vec());
          }
          self.finish(d);
        }
      },
      _ => {}
    }
  }
}
