//! The reactor's table of registered fds: connections, listeners and lingering flushes,
//! addressed by generation-tagged tokens (a token is never reused while events for its old
//! owner may still be queued).

use std::rc::Rc;

use mio::Token;

use crate::conn::Conn;
use crate::linger::Linger;
use crate::listener::ListenerCore;
use crate::reactor::Entry;

/// A slab of entries addressed by generation-tagged tokens.
#[derive(Default)]
pub(crate) struct Slab {
  slots: Vec<Slot>,
  free: Vec<u32>,
}

/// One slab slot: its generation beside the entry, 16 bytes (a `(u32, Option<Entry>)` pair takes
/// 24; every connection has a slot: bench/NOTES.md, memory per idle connection).
enum Slot {
  Free(u32),
  Conn(u32, Rc<Conn>),
  Listener(u32, Rc<ListenerCore>),
  Linger(u32, Rc<Linger>),
}

impl Slot {
  fn gen(&self) -> u32 {
    match self {
      Slot::Free(g) | Slot::Conn(g, _) | Slot::Listener(g, _) | Slot::Linger(g, _) => *g,
    }
  }

  fn entry(&self) -> Option<Entry> {
    match self {
      Slot::Free(_) => None,
      Slot::Conn(_, c) => Some(Entry::Conn(c.clone())),
      Slot::Listener(_, l) => Some(Entry::Listener(l.clone())),
      Slot::Linger(_, l) => Some(Entry::Linger(l.clone())),
    }
  }

  fn into_entry(self) -> Option<Entry> {
    match self {
      Slot::Free(_) => None,
      Slot::Conn(_, c) => Some(Entry::Conn(c)),
      Slot::Listener(_, l) => Some(Entry::Listener(l)),
      Slot::Linger(_, l) => Some(Entry::Linger(l)),
    }
  }
}

impl Slab {
  pub(crate) fn insert(&mut self, e: Entry) -> Token {
    let idx = match self.free.pop() {
      Some(i) => i,
      None => {
        self.slots.push(Slot::Free(0));
        (self.slots.len() - 1) as u32
      }
    };
    let slot = &mut self.slots[idx as usize];
    let gen = slot.gen().wrapping_add(1);
    *slot = match e {
      Entry::Conn(c) => Slot::Conn(gen, c),
      Entry::Listener(l) => Slot::Listener(gen, l),
      Entry::Linger(l) => Slot::Linger(gen, l),
    };
    Self::join(gen, idx as usize)
  }

  /// The token of generation `gen` at `idx` (the inverse of [`Slab::split`]).
  fn join(gen: u32, idx: usize) -> Token {
    Token(((gen as usize) << 32) | idx)
  }

  /// (generation, index) of a token.
  fn split(t: Token) -> (u32, usize) {
    ((t.0 >> 32) as u32, t.0 & 0xffff_ffff)
  }

  pub(crate) fn get(&self, t: Token) -> Option<Entry> {
    let (gen, idx) = Self::split(t);
    self.slots.get(idx).filter(|s| s.gen() == gen).and_then(Slot::entry)
  }

  pub(crate) fn remove(&mut self, t: Token) -> Option<Entry> {
    let (gen, idx) = Self::split(t);
    let slot = self.slots.get_mut(idx).filter(|s| s.gen() == gen && !matches!(s, Slot::Free(_)))?;
    self.free.push(idx as u32);
    std::mem::replace(slot, Slot::Free(gen)).into_entry()
  }

  /// The token of the entry at `idx` if the bits of its generation that a direct registration
  /// carries (`poller::GEN_MASK`) are `gen_bits`.
  pub(crate) fn token_at(&self, idx: usize, gen_bits: u64) -> Option<Token> {
    let slot = self.slots.get(idx)?;
    let gen = slot.gen();
    (!matches!(slot, Slot::Free(_)) && u64::from(gen) & crate::poller::GEN_MASK == gen_bits).then(|| Self::join(gen, idx))
  }

  /// Every entry with its token.
  pub(crate) fn all(&self) -> Vec<(Token, Entry)> {
    self.slots.iter().enumerate().filter_map(|(i, s)| s.entry().map(|e| (Self::join(s.gen(), i), e))).collect()
  }

  /// The open connections accepted by `listener`.
  pub(crate) fn conns_of(&self, listener: &Rc<ListenerCore>) -> Vec<Rc<Conn>> {
    let accepted = |c: &Rc<Conn>| c.st.try_borrow().is_ok_and(|st| st.listener.as_ref().is_some_and(|l| Rc::ptr_eq(l, listener)));
    self.slots.iter().filter_map(|s| match s { Slot::Conn(_, c) if accepted(c) => Some(c.clone()), _ => None }).collect()
  }

  pub(crate) fn drain(&mut self) -> Vec<Entry> {
    self.free.clear();
    self.slots.drain(..).filter_map(Slot::into_entry).collect()
  }
}
