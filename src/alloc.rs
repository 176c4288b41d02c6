//! The addon's own allocations (Rust's global allocator: connection state, TLS sessions and
//! records, tables) come from mimalloc, statically linked and private to the addon: Node's and
//! V8's memory stays with the system allocator, and no `malloc` symbol is exported.
//!
//! Why (bench/NOTES.md): rustls allocates every outgoing TLS record (~16 KiB) and every received
//! record's plaintext and frees it again once sent or read; glibc's `free` of such blocks (bin
//! consolidation) was ~5 % of TLS bulk cycles and `malloc` ~3 %, which mimalloc's per-thread
//! free lists avoid (TLS bulk ~+9 %). And an idle connection's state is smaller in mimalloc's
//! size classes, which carry no per-block header.
//!
//! mimalloc purges freed memory after a delay (10 ms by default), checked only when it next
//! allocates: an application that goes idle after closing many connections would keep their
//! memory resident. Purging at once costs a few more `madvise` calls when whole pages empty.

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's options; called once, when the addon is loaded (before it allocates and
/// before any other thread can use its allocator: `mi_option_set` is not thread safe).
pub(crate) fn configure() {
  // SAFETY: plain option store; see above for the threading constraint.
  unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}
