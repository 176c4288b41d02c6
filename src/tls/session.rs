//! TLS session resumption across connections (`getSession()` / `setSession()`).
//!
//! rustls keeps client session values (tickets, TLS 1.2 sessions) as opaque Rust values with no
//! serialised form, so a session handed to JS is a token naming a value held in a bounded
//! process-wide registry. Tokens resume connections in the same process (what Bun's own tests
//! exercise); a token from another process is accepted silently and gives a full handshake, as
//! Bun does for bytes that are not a session.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

use super::verify::VerifyError;

const MAGIC: &[u8] = b"bunnet-session:";
const ENTRIES: usize = 1024;
const TICKETS_PER_ENTRY: usize = 8;

/// Stored session values. TLS 1.3 tickets are single-use values (rustls takes them), so an entry
/// keeps several, and connections resumed from it add the fresh tickets they receive: the same
/// token keeps resuming consecutive connections (each of which reads something first, so that
/// its new tickets arrive), as in Bun.
enum Saved {
  Tls13(Tls13ClientSessionValue),
  Tls12(Tls12ClientSessionValue),
}

/// A token's sessions, the server name they were made with, and how the full handshake that
/// made them verified the server (a resumed handshake verifies nothing: the verdict is carried
/// over, as OpenSSL keeps it with the session).
#[derive(Default)]
struct Entry {
  values: VecDeque<Saved>,
  name: Option<ServerName<'static>>,
  /// `Some(None)`: verified; `Some(Some(e))`: failed with `e`; `None`: not known yet.
  verdict: Option<Option<VerifyError>>,
}

impl Entry {
  /// Values made for another name are dropped: a session resumes only the name it was verified
  /// for (the hostname check would otherwise be skipped).
  fn for_name(&mut self, n: &ServerName<'_>) -> &mut VecDeque<Saved> {
    let n = n.to_owned();
    if self.name.as_ref() != Some(&n) {
      if self.name.is_some() {
        // Another name's sessions and verdict; a first name keeps the verdict recorded by the
        // connection itself (its tickets arrive after its handshake).
        self.values.clear();
        self.verdict = None;
      }
      self.name = Some(n);
    }
    &mut self.values
  }

  fn matching(&mut self, n: &ServerName<'_>) -> Option<&mut VecDeque<Saved>> {
    (self.name.as_ref() == Some(&n.to_owned())).then_some(&mut self.values)
  }
}

/// One client connection's window on the registry: the entry it offers from (after
/// `setSession`) and stores received tickets into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
  entry: u64,
}

thread_local! {
  /// The slot of the connection whose rustls call is running on this thread: the store in the
  /// (shared) client configuration forwards to it.
  static CURRENT: std::cell::Cell<Option<Slot>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` (a rustls call for one connection) with `slot` as the session store.
pub(crate) fn with_slot<R>(slot: Option<Slot>, f: impl FnOnce() -> R) -> R {
  let prev = CURRENT.with(|c| c.replace(slot));
  let r = f();
  CURRENT.with(|c| c.set(prev));
  r
}

/// The session store every client configuration uses; see `CURRENT`.
#[derive(Debug)]
pub(crate) struct Store;

impl ClientSessionStore for Store {
  fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}
  fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
    None
  }
  fn set_tls12_session(&self, n: ServerName<'static>, v: Tls12ClientSessionValue) {
    if let Some(s) = CURRENT.with(std::cell::Cell::get) {
      s.set_tls12_session(n, v);
    }
  }
  fn tls12_session(&self, n: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
    CURRENT.with(std::cell::Cell::get)?.tls12_session(n)
  }
  fn remove_tls12_session(&self, _: &ServerName<'static>) {}
  fn insert_tls13_ticket(&self, n: ServerName<'static>, v: Tls13ClientSessionValue) {
    if let Some(s) = CURRENT.with(std::cell::Cell::get) {
      s.insert_tls13_ticket(n, v);
    }
  }
  fn take_tls13_ticket(&self, n: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
    CURRENT.with(std::cell::Cell::get)?.take_tls13_ticket(n)
  }
}

impl Slot {
  /// A slot on the entry `token` names, or on a fresh entry.
  pub(crate) fn new(token: Option<&[u8]>) -> Self {
    let entry = token.and_then(entry_of).filter(|id| with_entry(*id, |_| ()).is_some()).unwrap_or_else(new_entry);
    Slot { entry }
  }

  /// A token for `setSession`, once at least one session value was received (`None` before).
  pub(crate) fn export(&self) -> Option<Vec<u8>> {
    with_entry(self.entry, |e| !e.values.is_empty()).filter(|has| *has)?;
    let mut token = MAGIC.to_vec();
    token.extend_from_slice(&self.entry.to_le_bytes());
    Some(token)
  }
}

impl Slot {
  /// Records how the full handshake of this slot's connection verified the server (`None`: it
  /// did); kept for the connections that resume from the same token.
  pub(crate) fn set_verdict(&self, verdict: Option<VerifyError>) {
    with_entry(self.entry, |e| e.verdict = Some(verdict));
  }

  /// The verdict of the full handshake the sessions came from (`None` if unknown).
  pub(crate) fn verdict(&self) -> Option<Option<VerifyError>> {
    with_entry(self.entry, |e| e.verdict.clone()).flatten()
  }

  fn set_tls12_session(&self, n: ServerName<'static>, value: Tls12ClientSessionValue) {
    with_entry(self.entry, |e| {
      let v = e.for_name(&n);
      v.retain(|s| !matches!(s, Saved::Tls12(_)));
      v.push_back(Saved::Tls12(value));
    });
  }

  fn tls12_session(&self, n: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
    with_entry(self.entry, |e| {
      e.matching(n)?.iter().find_map(|s| match s {
        Saved::Tls12(v) => Some(v.clone()),
        Saved::Tls13(_) => None,
      })
    })
    .flatten()
  }

  fn insert_tls13_ticket(&self, n: ServerName<'static>, value: Tls13ClientSessionValue) {
    with_entry(self.entry, |e| {
      let v = e.for_name(&n);
      if v.len() >= TICKETS_PER_ENTRY {
        v.pop_front();
      }
      v.push_back(Saved::Tls13(value));
    });
  }

  fn take_tls13_ticket(&self, n: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
    with_entry(self.entry, |e| {
      let e = e.matching(n)?;
      let i = e.iter().rposition(|s| matches!(s, Saved::Tls13(_)))?;
      match e.remove(i)? {
        Saved::Tls13(v) => Some(v),
        Saved::Tls12(_) => None,
      }
    })
    .flatten()
  }
}

type Registry = (u64, VecDeque<(u64, Entry)>);

fn registry() -> &'static Mutex<Registry> {
  static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
  REG.get_or_init(|| Mutex::new((1, VecDeque::new())))
}

fn new_entry() -> u64 {
  let Ok(mut reg) = registry().lock() else { return 0 };
  let id = reg.0;
  reg.0 += 1;
  if reg.1.len() >= ENTRIES {
    reg.1.pop_front();
  }
  reg.1.push_back((id, Entry::default()));
  id
}

fn with_entry<R>(id: u64, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
  let mut reg = registry().lock().ok()?;
  reg.1.iter_mut().find(|(i, _)| *i == id).map(|(_, e)| f(e))
}

fn entry_of(token: &[u8]) -> Option<u64> {
  Some(u64::from_le_bytes(token.strip_prefix(MAGIC)?.try_into().ok()?))
}
