//! The few libuv entry points bunnet needs, resolved against the `node` binary at load time.
//!
//! The reactor owns exactly two libuv handles per environment: a `uv_poll_t` watching the
//! `mio::Poll` epoll fd (all socket readiness arrives through it) and a `uv_timer_t` for
//! `socket.timeout()`. Handle memory is a boxed, zeroed block checked against
//! `uv_handle_size()` once, so no libuv headers or bindgen are needed.

use std::os::raw::{c_int, c_void};

pub(crate) type PollCb = unsafe extern "C" fn(*mut c_void, c_int, c_int);
pub(crate) type TimerCb = unsafe extern "C" fn(*mut c_void);
pub(crate) type CloseCb = unsafe extern "C" fn(*mut c_void);

extern "C" {
  fn uv_poll_init(lp: *mut c_void, h: *mut c_void, fd: c_int) -> c_int;
  fn uv_poll_start(h: *mut c_void, events: c_int, cb: PollCb) -> c_int;
  fn uv_poll_stop(h: *mut c_void) -> c_int;
  fn uv_timer_init(lp: *mut c_void, h: *mut c_void) -> c_int;
  fn uv_timer_start(h: *mut c_void, cb: TimerCb, timeout: u64, repeat: u64) -> c_int;
  fn uv_timer_stop(h: *mut c_void) -> c_int;
  fn uv_close(h: *mut c_void, cb: Option<CloseCb>);
  fn uv_ref(h: *mut c_void);
  fn uv_unref(h: *mut c_void);
  fn uv_handle_size(t: c_int) -> usize;
}

const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;
/// Every event kind: libuv masks a dispatched event with the handle's interest, and in direct
/// mode (src/poller.rs) the events are the sockets'.
const UV_ALL_EVENTS: c_int = 1 | 2 | 4 | 8;

/// Storage for any libuv handle (uv_poll_t and uv_timer_t are far below 256 bytes on 64-bit).
#[repr(C, align(16))]
struct HandleBuf([u8; 256]);

/// An owned libuv handle. Closing hands the memory to libuv until its close callback frees it.
pub(crate) struct Handle(*mut c_void);

unsafe extern "C" fn free_handle(h: *mut c_void) {
  drop(Box::from_raw(h.cast::<HandleBuf>()));
}

impl Handle {
  fn alloc(kind: c_int) -> Option<Handle> {
    if unsafe { uv_handle_size(kind) } > std::mem::size_of::<HandleBuf>() {
      return None;
    }
    Some(Handle(Box::into_raw(Box::new(HandleBuf([0; 256]))).cast::<c_void>()))
  }

  /// A started `uv_poll_t` on `fd` (all events), initially unref'd.
  pub(crate) fn poll(lp: *mut c_void, fd: c_int, cb: PollCb) -> Option<Handle> {
    let h = Handle::alloc(UV_POLL)?;
    unsafe {
      if uv_poll_init(lp, h.0, fd) != 0 {
        drop(Box::from_raw(h.0.cast::<HandleBuf>()));
        return None;
      }
      uv_poll_start(h.0, UV_ALL_EVENTS, cb);
      uv_unref(h.0);
    }
    Some(h)
  }

  /// A stopped `uv_timer_t`, permanently unref'd: a socket timeout never keeps Node alive by
  /// itself (the socket does, while it is ref'd).
  pub(crate) fn timer(lp: *mut c_void) -> Option<Handle> {
    let h = Handle::alloc(UV_TIMER)?;
    unsafe {
      if uv_timer_init(lp, h.0) != 0 {
        drop(Box::from_raw(h.0.cast::<HandleBuf>()));
        return None;
      }
      uv_unref(h.0);
    }
    Some(h)
  }

  /// Starts a poll handle again after libuv stopped it (an error event).
  pub(crate) fn restart_poll(&self, cb: PollCb) {
    unsafe { uv_poll_start(self.0, UV_ALL_EVENTS, cb) };
  }

  pub(crate) fn set_ref(&self, on: bool) {
    unsafe {
      if on {
        uv_ref(self.0)
      } else {
        uv_unref(self.0)
      }
    }
  }

  pub(crate) fn timer_start(&self, cb: TimerCb, ms: u64) {
    unsafe { uv_timer_start(self.0, cb, ms, 0) };
  }

  pub(crate) fn timer_stop(&self) {
    unsafe { uv_timer_stop(self.0) };
  }

  /// Stops and closes the handle; libuv frees the memory from its close callback.
  pub(crate) fn close_poll(self) {
    unsafe {
      uv_poll_stop(self.0);
      uv_close(self.0, Some(free_handle));
    }
  }

  pub(crate) fn close_timer(self) {
    unsafe {
      uv_timer_stop(self.0);
      uv_close(self.0, Some(free_handle));
    }
  }
}

extern "C" {
  fn uv_backend_timeout(lp: *const c_void) -> c_int;
  fn uv_update_time(lp: *mut c_void);
}

/// How long libuv itself would block now (ms; `-1` for no limit, `0` when something is due:
/// a timer, an immediate, a closing handle, a stop request), with the loop's clock updated first.
pub(crate) fn backend_timeout(lp: *mut c_void) -> c_int {
  unsafe {
    uv_update_time(lp);
    uv_backend_timeout(lp)
  }
}
