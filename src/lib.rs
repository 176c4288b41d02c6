//! bunnet: Bun's socket API (`connect`, `listen`, `Socket`, `SocketListener`) for Node.js.
//!
//! Sockets are non-blocking fds registered in libuv's own epoll set (or, where libuv's layout is
//! not the known one, in a nested epoll set of bunnet's), driven from Node's own libuv loop
//! through a single `uv_poll_t`; handlers run on the JS thread straight from the
//! readiness callback, and `write()` is a direct `send(2)`. Only work that must leave the JS
//! thread (name resolution) runs on tokio.
//!
//! Layout:
//! - `options`: validation of `connect`/`listen` options into a `SocketConfig`
//! - `handlers`: the `SocketHandler` set, shared by a listener and its sockets (`handler_ref`:
//!   how a connection holds it; `registry`: the JS arrays the sets live in, and their sweeping)
//! - `reactor`: the per-env event dispatch inside libuv, ref counting, timers, teardown
//!   (`reactor/wakeup`: one wake-up's rounds, budgets and the in-callback wait); `slab`:
//!   its token-addressed table of registered fds; `poller`: where fds are registered (libuv's
//!   epoll set directly, or a nested set) and how a wake-up's events are found
//! - `conn`: one connection's state; `ready`: its readiness turned into handler calls (reads,
//!   FIN, resets); `close`: closing it; `conn_parts`: its rarely used fields and peer address,
//!   laid out small
//! - `connect`: resolution, connect attempts, promise settling
//! - `listener`: `listen()` and the `SocketListener` class
//! - `socket` / `socket_tls` / `socket_addr`: the `Socket` class (plain members / TLS members /
//!   address getters)
//! - `timeout`: the one-shot `socket.timeout()` deadlines
//! - `linger`: the background flush of an `end(data)` the kernel took only part of
//! - `readbuf`: the memory `data` chunks are read into and handed to JS from; `batch`: a wake-up
//!   round's `data` events delivered from one JS loop
//! - `class`: the raw Node-API class plumbing behind `Socket` and `SocketListener`
//! - `bytes`: `write()` argument decoding
//! - `bridge`: the threadsafe function and tokio runtime for off-thread work
//! - `debug`: `NODE_DEBUG=bunnet` logging
//! - `tls`: rustls sessions driven by the reactor (`read` path, `outcome` of the handshake for the
//!   handlers, `config`, `verify`, `cert`, `errors`, `session` resumption, `watch`/`keys` for
//!   Finished messages and tickets off the wire)
//! - `fdio`: `send`/`recv` on an fd; `sockopt`: socket2 helpers; `uv`: libuv FFI; `js`: raw
//!   Node-API helpers; `calls`: calling JS from
//!   the reactor (top-level mode, tick draining, promise settling); `error`: JS errors

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch;
mod bridge;
mod bytes;
mod calls;
mod class;
mod close;
mod conn;
mod conn_parts;
mod connect;
mod debug;
mod error;
mod fdio;
mod handler_ref;
mod handlers;
mod js;
mod linger;
mod listener;
mod options;
mod poller;
mod reactor;
mod readbuf;
mod ready;
mod registry;
mod slab;
mod socket;
mod socket_addr;
mod socket_tls;
mod sockopt;
mod timeout;
mod tls;
mod uv;

use napi::bindgen_prelude::*;
use napi_derive::napi;

pub use js::Raw;

/// Listens on TCP (`hostname` + `port`, `0` for an ephemeral port) or a unix socket path, and
/// returns the `SocketListener`. Invalid options and bind failures throw synchronously.
#[napi(js_name = "listen")]
pub fn listen_js(env: Env, options: Unknown) -> Result<Raw> {
  let e = env.raw();
  let v = options.value().value;
  let v = (!js::is_undefined(e, v)).then_some(v);
  listener::listen(e, v).map(Raw)
}

/// The classes `Socket` and `SocketListener` of this environment (for `instanceof` and the
/// prototype additions made by `index.js`), and its `connect` (see `connect::js_function`).
#[napi(js_name = "classes")]
pub fn classes_js(env: Env) -> Result<Raw> {
  let e = env.raw();
  reactor::guard_teardown(e);
  let o = js::object(e);
  let s = class::define::<socket::SocketHandle>(e)?;
  let l = class::define::<listener::ListenerHandle>(e)?;
  js::set(e, o, "Socket", s).map_err(|_| error::pending())?;
  js::set(e, o, "SocketListener", l).map_err(|_| error::pending())?;
  js::set(e, o, "connect", connect::js_function(e)?).map_err(|_| error::pending())?;
  Ok(Raw(o))
}
