//! [`HandlerRef`]: how a connection holds its handler set, in one tagged pointer.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::handlers::{HandlerSlot, Handlers};

/// What a connection calls: a set of its own (client sockets, and any socket after
/// `socket.reload()`), or its listener's slot (server sockets, so `listener.reload()` reaches them).
///
/// One tagged pointer (8 bytes, and 8 as an `Option`: every connection holds one, see
/// bench/NOTES.md on memory per idle connection): an `Rc<Handlers>` (bit 0 clear) or a
/// [`HandlerSlot`] (bit 0 set), each owning one strong count.
pub(crate) struct HandlerRef(NonNull<u8>);

enum Target {
  Own(*const Handlers),
  Shared(*const RefCell<Rc<Handlers>>),
}

impl HandlerRef {
  pub(crate) fn own(h: Rc<Handlers>) -> HandlerRef {
    const { assert!(std::mem::align_of::<Handlers>() >= 2) };
    // SAFETY: `Rc::into_raw` never returns null.
    HandlerRef(unsafe { NonNull::new_unchecked(Rc::into_raw(h) as *mut u8) })
  }

  pub(crate) fn shared(slot: HandlerSlot) -> HandlerRef {
    const { assert!(std::mem::align_of::<RefCell<Rc<Handlers>>>() >= 2) };
    // SAFETY: as above; the address is at least 2-aligned, so `| 1` keeps it non-null and
    // recoverable.
    HandlerRef(unsafe { NonNull::new_unchecked((Rc::into_raw(slot) as usize | 1) as *mut u8) })
  }

  fn target(&self) -> Target {
    let p = self.0.as_ptr() as usize;
    if p & 1 == 0 {
      Target::Own(p as *const Handlers)
    } else {
      Target::Shared((p & !1) as *const RefCell<Rc<Handlers>>)
    }
  }

  /// The set in effect now.
  pub(crate) fn current(&self) -> Option<Rc<Handlers>> {
    match self.target() {
      // SAFETY: this value owns a strong count of the `Rc` behind the pointer (see `own`/`shared`),
      // so it is alive; `increment_strong_count` + `from_raw` hands out one more count.
      Target::Own(p) => unsafe {
        Rc::increment_strong_count(p);
        Some(Rc::from_raw(p))
      },
      Target::Shared(p) => unsafe { &*p }.try_borrow().ok().map(|h| h.clone()),
    }
  }
}

impl Clone for HandlerRef {
  fn clone(&self) -> Self {
    // SAFETY: the pointer owns a strong count (alive); the clone owns the one added here.
    match self.target() {
      Target::Own(p) => unsafe { Rc::increment_strong_count(p) },
      Target::Shared(p) => unsafe { Rc::increment_strong_count(p) },
    }
    HandlerRef(self.0)
  }
}

impl Drop for HandlerRef {
  fn drop(&mut self) {
    // SAFETY: gives back the strong count this value owns, exactly once.
    match self.target() {
      Target::Own(p) => drop(unsafe { Rc::from_raw(p) }),
      Target::Shared(p) => drop(unsafe { Rc::from_raw(p) }),
    }
  }
}
