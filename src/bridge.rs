//! The way back to the JS thread for work done elsewhere: one threadsafe function per
//! environment, created unref'd (the reactor's ref count, which counts pending connects, is what
//! keeps Node alive) and carrying [`Completion`]s.
//!
//! Name resolution runs on a small shared tokio runtime (`tokio::net::lookup_host`, which moves
//! getaddrinfo onto tokio's blocking pool). The threadsafe function sits behind a mutex that the
//! env cleanup hook takes before releasing it, so a lookup finishing during worker teardown can
//! never call into a freed function.

use std::io;
use std::net::SocketAddr;
use std::os::raw::c_void;
use std::sync::{Arc, Mutex, OnceLock};

use mio::Token;
use napi::sys;

use crate::js::{self, Env};

/// Results delivered on the JS thread.
pub(crate) enum Completion {
  /// The names of a pending connect resolved (or did not).
  Resolved { token: Token, result: io::Result<Vec<SocketAddr>> },
  /// A connect that failed synchronously: reported asynchronously, as Bun does.
  Failed { token: Token, error: io::Error },
}

struct Tsfn(sys::napi_threadsafe_function);
// SAFETY: a napi_threadsafe_function is designed to be called from any thread; access to this
// one is serialised by the mutex in `Bridge`.
unsafe impl Send for Tsfn {}

pub(crate) struct Bridge {
  tsfn: Mutex<Option<Tsfn>>,
}

impl Bridge {
  pub(crate) fn new(env: Env) -> napi::Result<Arc<Bridge>> {
    let mut tsfn = std::ptr::null_mut();
    let status = unsafe {
      sys::napi_create_threadsafe_function(
        env,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        js::string(env, "bunnet"),
        0,
        1,
        std::ptr::null_mut(),
        None,
        std::ptr::null_mut(),
        Some(call_js),
        &mut tsfn,
      )
    };
    if status != sys::Status::napi_ok {
      return Err(napi::Error::from_reason("napi_create_threadsafe_function failed"));
    }
    unsafe { sys::napi_unref_threadsafe_function(env, tsfn) };
    Ok(Arc::new(Bridge { tsfn: Mutex::new(Some(Tsfn(tsfn))) }))
  }

  /// Queues `c` for the JS thread; dropped silently once the environment is gone.
  pub(crate) fn post(&self, c: Completion) {
    let Ok(guard) = self.tsfn.lock() else { return };
    let Some(t) = guard.as_ref() else { return };
    let data = Box::into_raw(Box::new(c)).cast::<c_void>();
    let st = unsafe { sys::napi_call_threadsafe_function(t.0, data, sys::ThreadsafeFunctionCallMode::nonblocking) };
    if st != sys::Status::napi_ok {
      // SAFETY: the call failed, so ownership of `data` never left this function.
      drop(unsafe { Box::from_raw(data.cast::<Completion>()) });
    }
  }

  /// Releases the threadsafe function (env teardown). Later `post`s become no-ops.
  pub(crate) fn close(&self) {
    let Ok(mut guard) = self.tsfn.lock() else { return };
    if let Some(t) = guard.take() {
      unsafe { sys::napi_release_threadsafe_function(t.0, sys::ThreadsafeFunctionReleaseMode::abort) };
    }
  }
}

unsafe extern "C" fn call_js(env: sys::napi_env, _f: sys::napi_value, _ctx: *mut c_void, data: *mut c_void) {
  if data.is_null() {
    return;
  }
  let c = *Box::from_raw(data.cast::<Completion>());
  if env.is_null() {
    return;
  }
  let Some(_scopes) = crate::reactor::enter_js(env) else { return };
  crate::connect::on_completion(env, c);
}

fn runtime() -> Option<&'static tokio::runtime::Runtime> {
  static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
  RT.get_or_init(|| {
    tokio::runtime::Builder::new_multi_thread()
      .worker_threads(1)
      .max_blocking_threads(8)
      .thread_name("bunnet-dns")
      .enable_all()
      .build()
      .ok()
  })
  .as_ref()
}

/// Resolves `host:port` off the JS thread and posts the result for `token`.
pub(crate) fn resolve(bridge: Arc<Bridge>, token: Token, host: String, port: u16) {
  let Some(rt) = runtime() else {
    bridge.post(Completion::Resolved { token, result: Err(io::Error::other("no resolver runtime")) });
    return;
  };
  rt.spawn(async move {
    let result = tokio::net::lookup_host((host.as_str(), port)).await.map(Iterator::collect);
    bridge.post(Completion::Resolved { token, result });
  });
}
