//! Where the reactor's fds wait for readiness: directly in libuv's own epoll set where that is
//! known to work, otherwise in a nested epoll set of bunnet's own.
//!
//! Both ways, libuv reports readiness to one `uv_poll_t` that watches the nested set's fd (the
//! "marker"), and the reactor handles it on the JS thread.
//!
//! - **Nested** (any libuv): fds are registered edge-triggered in the nested set, whose fd sits in
//!   libuv's set. A wake-up costs libuv's `epoll_pwait`, then an `epoll_wait` on the nested set,
//!   and every readiness change runs two kernel wake-up callbacks (bench/NOTES.md).
//! - **Direct** (x86_64, and the libuv versions whose sources this was checked against:
//!   1.46.0-1.48.0 and 1.49.2-1.52.1, i.e. Node 20, 22 and 24; the loop's layout is checked at
//!   start-up and every dispatch validated): fds are registered edge-triggered in libuv's set itself,
//!   their event data tagged with the marker's fd in the low 32 bits, which is what libuv reads
//!   as the fd of an event, so libuv hands every such event to the marker's `uv_poll_t`. That
//!   callback is not told which event it got, so the reactor reads the dispatch's events array
//!   from libuv's loop (`uv__loop_internal_fields_t.inv`, the record libuv keeps for its own
//!   `uv__platform_invalidate_fd`), takes all of its own events from it at once and marks them
//!   invalid (`data.fd = -1`) so libuv skips the rest, as libuv does for a closed fd.
//!   If a dispatch ever fails validation, every direct registration moves to the nested set
//!   (re-adding an fd reports its current readiness, so nothing is lost) and direct mode ends.
//!   `BUNNET_NESTED_EPOLL=1` forces nested mode; `BUNNET_NESTED_EPOLL=late` starts direct and
//!   falls back at the first dispatch (for the tests of that path).
//!
//! In direct mode a wake-up does not return to libuv as soon as its events are handled: it waits
//! in libuv's set itself for the next one (`epoll_wait` on `uv_backend_fd`, never past what
//! `uv_backend_timeout` allows: a timer, an immediate, a closing handle), so a socket's next
//! event is handled without the loop turn in between (libuv's post-wake bookkeeping and Node's
//! immediate check: ~0.4 us per wake-up, bench/NOTES.md). Any other handle's fd that becomes
//! ready ends the wait and returns to libuv, which sees it again (its registrations are
//! level-triggered), so nothing else waits longer than it would have. The wait is counted as
//! idle time in libuv's loop metrics, so `performance.eventLoopUtilization()` is unchanged.
//!
//! Event data, direct: `tag << 32 | marker`, where `tag` = generation (12 bits) << 20 |
//! (slab index + 1) (20 bits); entries past index 2^20 - 2 are registered nested. The marker's
//! own readiness (the nested set has events) arrives with `tag` 0. Nested: the full token.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_int, c_uint, c_void};

use mio::Token;

/// Interest in reading (and in the peer's FIN), as mio registers it.
pub(crate) const READ: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
/// Interest in writing.
pub(crate) const WRITE: u32 = libc::EPOLLOUT as u32;
/// What a connection is registered for, whatever its state (what [`Poller::migrate`] re-registers).
pub(crate) const CONN: u32 = READ | WRITE;

const ET: u32 = libc::EPOLLET as u32;
const IDX_BITS: u32 = 20;
const IDX_LIMIT: usize = (1 << IDX_BITS) - 1;
/// The bits of a slab generation a direct registration's tag carries.
pub(crate) const GEN_MASK: u64 = 0xfff;
/// Offsets in libuv's `uv__loop_internal_fields_t` (x86_64 Linux) of `ctl.ringfd`, `iou.ringfd`
/// and `inv`; `flags`, `loop_metrics` and `current_timeout` sit at the same offsets in every
/// version direct mode accepts. (Other architectures run nested: on aarch64 `pthread_mutex_t`,
/// inside `loop_metrics`, is 48 bytes instead of 40, which moves everything after it.)
struct Layout {
  ctl_ringfd: usize,
  iou_ringfd: usize,
  inv: usize,
  /// Before 1.49.0, with its epoll_ctl ring in use, libuv queues the `EPOLL_CTL_DEL` of an fd it
  /// stops watching mid-dispatch and submits it later, which would remove the registration of a
  /// socket of ours that got the same fd number in between: direct mode then needs no ring.
  queued_del: bool,
  /// Since 1.49.0 the fs ring's fd reads -2 until its first use.
  lazy_iou: bool,
}

/// The layout of a libuv version whose `uv__io_poll` dispatch was checked to work the way direct
/// mode relies on (an events array published in `lfields->inv`, events whose `data.fd` is -1
/// skipped, every other registration level-triggered), from the sources of each release:
/// - 1.46.0-1.48.0: `struct uv__iou` with `sqarray` and `flags` (136 bytes);
/// - 1.49.2-1.52.1: without them (120 bytes; removed in 1.49.1).
///
/// Each ring's fd is checked to be -1 (none), an io_uring fd, or (`lazy_iou`) -2.
///
/// 1.49.0 and 1.49.1 are left out: they registered libuv's async eventfd edge-triggered (undone in
/// 1.49.2), and a wait of bunnet's in libuv's set could then take the only report of a
/// `uv_async_send` from libuv. Any other version runs nested.
fn layout(version: c_uint) -> Option<Layout> {
  const CTL: usize = 200;
  let (major, minor, patch) = (version >> 16, (version >> 8) & 0xff, version & 0xff);
  // `ctl` follows `current_timeout` at 200, then `iou`, then `inv`.
  let (iou_size, ringfd, old) = match (major, minor, patch) {
    (1, 46..=48, 0) => (136, 120, true),
    (1, 49, 2) | (1, 50..=51, 0) | (1, 52, 0..=1) => (120, 112, false),
    _ => return None,
  };
  Some(Layout { ctl_ringfd: CTL + ringfd, iou_ringfd: CTL + iou_size + ringfd, inv: CTL + 2 * iou_size, queued_del: old, lazy_iou: !old })
}
const LOOP_INTERNAL_FIELDS: usize = 40;
const LF_CURRENT_TIMEOUT: usize = 192;
/// `loop_metrics.provider_idle_time` and `loop_metrics.lock` in the internal fields, and the
/// flag that says idle time is being measured (Node turns it on for `eventLoopUtilization()`).
const LF_IDLE_TIME: usize = 144;
const LF_METRICS_LOCK: usize = 152;
const UV_METRICS_IDLE_TIME: c_uint = 1;
/// libuv's events array per `epoll_pwait`.
const UV_MAX_EVENTS: c_int = 1024;

extern "C" {
  fn uv_version() -> c_uint;
  fn uv_backend_fd(lp: *const c_void) -> c_int;
}

/// `struct uv__invalidate` of libuv (src/unix/linux.c; the same in every version [`layout`] knows).
#[repr(C)]
struct Invalidate {
  prep: *mut c_void,
  events: *mut libc::epoll_event,
  nfds: c_int,
}

/// One readiness report, decoded like mio's (so the handlers see what they saw under mio).
#[derive(Clone, Copy)]
pub(crate) struct Ready {
  bits: u32,
}

impl Ready {
  pub(crate) fn is_readable(&self) -> bool {
    self.bits & (libc::EPOLLIN | libc::EPOLLPRI) as u32 != 0
  }
  pub(crate) fn is_writable(&self) -> bool {
    self.bits & libc::EPOLLOUT as u32 != 0
  }
  pub(crate) fn is_error(&self) -> bool {
    self.bits & libc::EPOLLERR as u32 != 0
  }
  pub(crate) fn is_read_closed(&self) -> bool {
    let b = self.bits as c_int;
    b & libc::EPOLLHUP != 0 || (b & libc::EPOLLIN != 0 && b & libc::EPOLLRDHUP != 0)
  }
  pub(crate) fn is_write_closed(&self) -> bool {
    let b = self.bits as c_int;
    b & libc::EPOLLHUP != 0 || (b & libc::EPOLLOUT != 0 && b & libc::EPOLLERR != 0) || b == libc::EPOLLERR
  }
}

/// A raw event as taken from a set: `(data, bits, from the nested set)`.
pub(crate) type Raw = (u64, u32, bool);

/// What a raw event is for.
pub(crate) enum Decoded {
  /// A nested registration (data is the full token).
  Token(Token, u32),
  /// A direct registration: slab index and the low 12 bits of its generation.
  Tagged(usize, u64, u32),
  /// The nested set has events.
  Nested,
  /// Not ours (another fd in libuv's set).
  Foreign,
}

impl Ready {
  pub(crate) fn new(bits: u32) -> Ready {
    Ready { bits }
  }
}

pub(crate) struct Poller {
  nested: OwnedFd,
  backend: c_int,
  /// `&lfields->inv` while direct mode is on, else null.
  inv: *const *const Invalidate,
  /// libuv's internal fields (`lfields`) while direct mode is on, else null.
  lf: *mut u8,
  buf: Vec<libc::epoll_event>,
  /// Fail the next dispatch's validation (`BUNNET_NESTED_EPOLL=late`).
  fail_next: bool,
}

impl Poller {
  pub(crate) fn new(lp: *mut c_void) -> io::Result<Poller> {
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
      return Err(io::Error::last_os_error());
    }
    let nested = unsafe { OwnedFd::from_raw_fd(fd) };
    let backend = unsafe { uv_backend_fd(lp) };
    let mode = std::env::var("BUNNET_NESTED_EPOLL").unwrap_or_default();
    let nested_only = !(mode.is_empty() || mode == "0" || mode == "late");
    let (lf, inv) = if nested_only { None } else { direct_inv(lp) }.unwrap_or((std::ptr::null_mut(), std::ptr::null()));
    let buf = vec![libc::epoll_event { events: 0, u64: 0 }; UV_MAX_EVENTS as usize];
    Ok(Poller { nested, backend, inv, lf, buf, fail_next: mode == "late" })
  }

  /// The nested set's fd: what libuv's `uv_poll_t` watches, and the marker of direct events.
  pub(crate) fn marker(&self) -> RawFd {
    self.nested.as_raw_fd()
  }

  pub(crate) fn is_direct(&self) -> bool {
    !self.inv.is_null()
  }

  fn target(&self, token: Token) -> (c_int, u64) {
    let idx = token.0 & 0xffff_ffff;
    if self.is_direct() && idx < IDX_LIMIT - 1 {
      let gen = (token.0 >> 32) as u64 & GEN_MASK;
      let tag = (gen << IDX_BITS) | (idx as u64 + 1);
      (self.backend, (tag << 32) | u64::from(self.marker() as u32))
    } else {
      (self.nested.as_raw_fd(), token.0 as u64)
    }
  }

  fn ctl(epfd: c_int, op: c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } < 0 {
      return Err(io::Error::last_os_error());
    }
    Ok(())
  }

  pub(crate) fn register(&self, fd: RawFd, token: Token, interest: u32) -> io::Result<()> {
    let (epfd, data) = self.target(token);
    Self::ctl(epfd, libc::EPOLL_CTL_ADD, fd, interest | ET, data)
  }

  /// Re-arms a registration (edge-triggered: reports the current readiness again).
  pub(crate) fn reregister(&self, fd: RawFd, token: Token, interest: u32) -> io::Result<()> {
    let (epfd, data) = self.target(token);
    Self::ctl(epfd, libc::EPOLL_CTL_MOD, fd, interest | ET, data)
  }

  pub(crate) fn deregister(&self, fd: RawFd, token: Token) -> io::Result<()> {
    let (epfd, _) = self.target(token);
    Self::ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, 0)
  }

  /// Moves one registration from libuv's set to the nested set (see [`Poller::fall_back`]).
  pub(crate) fn migrate(&self, fd: RawFd, token: Token, interest: u32) {
    if Self::ctl(self.backend, libc::EPOLL_CTL_DEL, fd, 0, 0).is_ok() {
      let _ = Self::ctl(self.nested.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, interest | ET, token.0 as u64);
    }
  }

  /// Ends direct mode (the caller then migrates every registration).
  pub(crate) fn fall_back(&mut self) {
    crate::debug::debug!("poller: a libuv dispatch failed validation; registrations move to a nested epoll set");
    self.inv = std::ptr::null();
  }

  pub(crate) fn decode(&self, (data, bits, nested): Raw) -> Decoded {
    if nested {
      return Decoded::Token(Token(data as usize), bits);
    }
    if data as u32 != self.marker() as u32 {
      return Decoded::Foreign;
    }
    let tag = data >> 32;
    if tag == 0 {
      return Decoded::Nested;
    }
    let idx = (tag & ((1 << IDX_BITS) - 1)) as usize;
    if idx == 0 {
      return Decoded::Foreign;
    }
    Decoded::Tagged(idx - 1, tag >> IDX_BITS, bits)
  }

  /// In direct mode, called from the marker's `uv_poll_t` callback: takes every event of ours
  /// from libuv's current dispatch into `out` (marking each invalid for libuv). `false` if the
  /// dispatch did not validate (the caller falls back).
  pub(crate) fn take_dispatch(&mut self, out: &mut Vec<Raw>) -> bool {
    if self.inv.is_null() {
      return true;
    }
    if std::mem::take(&mut self.fail_next) {
      return false;
    }
    let inv = unsafe { std::ptr::read_volatile(self.inv) };
    if inv.is_null() {
      return false;
    }
    let (events, nfds) = unsafe { ((*inv).events, (*inv).nfds) };
    if events.is_null() || !(1..=UV_MAX_EVENTS).contains(&nfds) || (events as usize) % 4 != 0 {
      return false;
    }
    let marker = self.marker() as u32;
    let before = out.len();
    for i in 0..nfds as usize {
      let p = unsafe { events.add(i) };
      let ev = unsafe { std::ptr::read_unaligned(p) };
      let data = ev.u64;
      if data as u32 == marker {
        out.push((data, ev.events, false));
        unsafe { std::ptr::write_unaligned(p, libc::epoll_event { events: ev.events, u64: (data & !0xffff_ffff) | 0xffff_ffff }) };
      }
    }
    // libuv called us for one of these: none found means the layout is not what it was checked to be.
    out.len() > before
  }

  /// A zero-timeout poll: of libuv's set in direct mode (events that are not ours are left to
  /// libuv, which sees them again: its registrations are level-triggered), else of the nested set.
  pub(crate) fn poll_now(&mut self, out: &mut Vec<Raw>) {
    if self.is_direct() {
      self.poll_set(self.backend, false, 0, out);
    } else {
      self.poll_nested(out);
    }
  }

  /// A blocking poll of libuv's set (direct mode), up to `ms`.
  pub(crate) fn wait(&mut self, out: &mut Vec<Raw>, ms: c_int) {
    if self.is_direct() {
      self.poll_set(self.backend, false, ms, out);
    }
  }

  /// Counts `d` (a wait in libuv's set from inside a callback) as idle time in libuv's loop
  /// metrics, as libuv counts its own waits, so `performance.eventLoopUtilization()` reads the
  /// same as it would had libuv waited.
  pub(crate) fn add_idle_time(&self, d: std::time::Duration) {
    if self.inv.is_null() {
      return;
    }
    unsafe {
      let lf = self.lf;
      if std::ptr::read(lf.cast::<c_uint>()) & UV_METRICS_IDLE_TIME == 0 {
        return;
      }
      let lock = lf.add(LF_METRICS_LOCK).cast::<libc::pthread_mutex_t>();
      if libc::pthread_mutex_lock(lock) != 0 {
        return;
      }
      let idle = lf.add(LF_IDLE_TIME).cast::<u64>();
      *idle = (*idle).wrapping_add(d.as_nanos() as u64);
      libc::pthread_mutex_unlock(lock);
    }
  }

  /// A zero-timeout poll of the nested set.
  pub(crate) fn poll_nested(&mut self, out: &mut Vec<Raw>) {
    let fd = self.nested.as_raw_fd();
    self.poll_set(fd, true, 0, out);
  }

  fn poll_set(&mut self, epfd: c_int, nested: bool, ms: c_int, out: &mut Vec<Raw>) {
    let n = unsafe { libc::epoll_wait(epfd, self.buf.as_mut_ptr(), self.buf.len() as c_int, ms) };
    for ev in self.buf.iter().take(n.max(0) as usize) {
      let (data, bits) = (ev.u64, ev.events);
      out.push((data, bits, nested));
    }
  }
}

/// libuv's internal fields and `&lfields->inv`, if this libuv is one whose layout [`layout`] knows
/// and its loop looks the way that layout says.
fn direct_inv(lp: *mut c_void) -> Option<(*mut u8, *const *const Invalidate)> {
  let at = layout(unsafe { uv_version() }).filter(|_| cfg!(target_arch = "x86_64"))?;
  let lf = unsafe { std::ptr::read(lp.cast::<u8>().add(LOOP_INTERNAL_FIELDS).cast::<*mut u8>()) };
  if lf.is_null() {
    return None;
  }
  let read_int = |off: usize| unsafe { std::ptr::read(lf.add(off).cast::<c_int>()) };
  let flags = unsafe { std::ptr::read(lf.cast::<c_uint>()) };
  let ring_ok = |fd: c_int, lazy: bool| fd == -1 || (lazy && fd == -2) || is_io_uring(fd);
  let ctl = read_int(at.ctl_ringfd);
  let plausible = flags & !UV_METRICS_IDLE_TIME == 0
    && read_int(LF_CURRENT_TIMEOUT) >= -1
    && ring_ok(ctl, false)
    && ring_ok(read_int(at.iou_ringfd), at.lazy_iou)
    && !(at.queued_del && ctl != -1);
  plausible.then(|| (lf, unsafe { lf.add(at.inv) }.cast::<*const Invalidate>().cast_const()))
}

/// Whether `fd` is an open io_uring instance (what a libuv ring's fd is), by its `/proc` link.
fn is_io_uring(fd: c_int) -> bool {
  fd >= 0 && std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p.as_os_str() == "anon_inode:[io_uring]")
}
