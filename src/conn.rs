//! One connection as the reactor owns it: the non-blocking fd, its state machine, and the rules
//! for turning readiness into handler calls (spec §4, §5).
//!
//! The JS `Socket` is a thin handle holding an `Rc<Conn>`; the reactor's slab holds another while
//! the connection is registered. After close only the handle keeps the (fd-less) state alive,
//! which is what the getters of a dead socket read.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use mio::Token;
use napi::sys;

use crate::handlers::{Event, HandlerRef, Handlers};
use crate::js::{self, Called, Env, Value};
use crate::listener::ListenerCore;
use crate::reactor;
use crate::readbuf;

pub(crate) use crate::close::{close, close_then_report, Closed};
pub(crate) use crate::conn_parts::{Extra, Remote};
pub(crate) use crate::ready::{on_eof, on_event, on_kick, plain_read, read_on, read_once};

pub(crate) enum Io {
  Tcp(mio::net::TcpStream),
  Unix(mio::net::UnixStream),
}

impl Io {
  pub(crate) fn fd(&self) -> RawFd {
    match self {
      Io::Tcp(s) => s.as_raw_fd(),
      Io::Unix(s) => s.as_raw_fd(),
    }
  }

  pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
    crate::fdio::recv(self.fd(), buf)
  }

  pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
    match self {
      Io::Tcp(s) => s.take_error(),
      Io::Unix(s) => s.take_error(),
    }
  }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
  /// Client: waiting for name resolution.
  Resolving,
  /// Client: non-blocking connect in flight.
  Connecting,
  Open,
  Closed,
}

/// How a close treats the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
  /// FIN after anything already written (`end`, `close`, peer FIN, `stop(true)`).
  Graceful,
  /// RST (`terminate`): SO_LINGER 0 then close.
  Reset,
  /// The connection is already dead (reset by the peer, read error): just release the fd.
  Gone,
}

/// A client connect still looking for an address that answers.
pub(crate) struct Pending {
  pub addrs: Vec<SocketAddr>,
  pub host: String,
  pub port: u16,
  pub deferred: sys::napi_deferred,
  pub tls: Option<Box<crate::tls::config::TlsOptions>>,
}

pub(crate) struct ConnState {
  pub io: Option<Io>,
  pub phase: Phase,
  pub handlers: Option<HandlerRef>,
  /// The native side of the JS `Socket`, whose wrap reference is strong until the close
  /// handler has run (so the box outlives this pointer: it is cleared at close, before that
  /// reference is released).
  pub js: *const crate::socket::SocketHandle,
  pub listener: Option<Rc<ListenerCore>>,
  pub allow_half_open: bool,
  pub is_unix: bool,
  pub want_drain: bool,
  pub write_shut: bool,
  pub read_eof: bool,
  pub paused: bool,
  pub refed: bool,
  /// Whether this connection currently holds one of the reactor's refs.
  counted: bool,
  pub bytes_written: u64,
  pub remote: Option<Remote>,
  pub is_v6: bool,
  /// Address getters read while open ([`crate::conn_parts::SEEN_REMOTE_ADDRESS`], ...): those
  /// keep answering after the close, as in Bun and `node:net`.
  pub seen: u8,
  /// The size predicted for the next read, from the last ones (see `readbuf`).
  pub read_size: readbuf::ReadSize,
  /// The TLS session, on TLS sockets.
  pub tls: Option<Box<crate::tls::TlsState>>,
  /// What few connections use, allocated on first use so an idle connection stays small
  /// (bench/NOTES.md, memory per idle connection).
  pub extra: Option<Box<Extra>>,
}

pub(crate) struct Conn {
  pub token: Cell<Token>,
  pub st: RefCell<ConnState>,
}

impl Conn {
  pub(crate) fn new(handlers: HandlerRef, allow_half_open: bool, is_unix: bool) -> Rc<Conn> {
    Rc::new(Conn {
      token: Cell::new(Token(usize::MAX)),
      st: RefCell::new(ConnState {
        io: None,
        phase: Phase::Resolving,
        handlers: Some(handlers),
        js: std::ptr::null_mut(),
        listener: None,
        allow_half_open,
        is_unix,
        want_drain: false,
        write_shut: false,
        read_eof: false,
        seen: 0,
        paused: false,
        refed: true,
        counted: false,
        bytes_written: 0,
        remote: None,
        is_v6: false,
        read_size: readbuf::ReadSize::Small,
        tls: None,
        extra: None,
      }),
    })
  }

  /// Brings the reactor's ref count in line with this connection's state: a pending connect, or
  /// an open ref'd socket, keeps Node alive; nothing closed ever does.
  pub(crate) fn sync_ref(&self) {
    let Ok(mut st) = self.st.try_borrow_mut() else { return };
    let want = match st.phase {
      Phase::Closed => false,
      Phase::Resolving | Phase::Connecting => true,
      Phase::Open => st.refed,
    };
    if want != st.counted {
      st.counted = want;
      reactor::with(|r| r.adjust_refs(if want { 1 } else { -1 }));
    }
  }

  pub(crate) fn is_open(&self) -> bool {
    self.st.try_borrow().is_ok_and(|st| st.phase == Phase::Open)
  }

  /// The JS `Socket` object, while the connection has not finished closing.
  pub(crate) fn socket(&self, env: Env) -> Option<Value> {
    let h = self.st.try_borrow().ok()?.js;
    if h.is_null() {
      return None;
    }
    // SAFETY: non-null only while the object is held strongly (see `ConnState::js`).
    js::deref(env, unsafe { (*h).wrap_ref() }).ok()
  }

  pub(crate) fn handlers(&self) -> Option<Rc<Handlers>> {
    self.st.try_borrow().ok()?.handlers.as_ref()?.current()
  }

  /// Non-blocking `send(2)`: the bytes the kernel took, `0` while a `drain` is owed, `-1` when the
  /// socket cannot be written any more (closed, shut down, or the send failed).
  pub(crate) fn send(&self, bytes: &[u8]) -> i64 {
    let Ok(mut st) = self.st.try_borrow_mut() else { return -1 };
    if st.phase != Phase::Open || st.write_shut {
      return -1;
    }
    let Some(fd) = st.io.as_ref().map(Io::fd) else { return -1 };
    if bytes.is_empty() {
      return 0;
    }
    if st.want_drain {
      return 0;
    }
    if st.extra().is_some_and(|x| x.reset.is_some()) {
      // The peer reset the connection (seen by an earlier send): nothing more can be delivered.
      return -1;
    }
    if st.tls.is_some() {
      let n = crate::tls::send(&mut st, bytes);
      let idle = st.tls.as_ref().is_some_and(|t| !t.conn.wants_write());
      if st.want_drain && idle {
        // Cut short by the session's buffer limit, not by the kernel: everything is already on
        // the wire, so no writable edge would come. Re-arm one so `drain` still fires.
        let token = self.token.get();
        if let Some(io) = st.io.as_mut() {
          let _ = reactor::with(|r| r.reregister(io.fd(), token, crate::poller::CONN));
        }
      }
      return n;
    }
    if st.has_pending_tls() {
      return crate::tls::send_pending(&mut st, bytes);
    }
    loop {
      let err = match crate::fdio::send(fd, bytes) {
        Ok(n) => {
          st.bytes_written += n as u64;
          if n < bytes.len() {
            st.want_drain = true;
          }
          return n as i64;
        }
        Err(e) => e,
      };
      match err.raw_os_error() {
        Some(libc::EINTR) => continue,
        Some(libc::EAGAIN) => {
          st.want_drain = true;
          return 0;
        }
        // The peer reset the connection. send() consumed the socket error, so the read side
        // would only see EOF: remember it for the close (no clean `end` after a reset).
        Some(e @ (libc::ECONNRESET | libc::EPIPE)) => {
          st.extra_mut().reset.get_or_insert(e);
          return -1;
        }
        _ => return -1,
      }
    }
  }

  /// A closed connection with this one's counters and family (what a detached handle reads).
  pub(crate) fn closed_copy(&self) -> Rc<Conn> {
    let c = Conn::new(HandlerRef::own(Handlers::empty()), false, false);
    if let (Ok(mut st), Ok(old)) = (c.st.try_borrow_mut(), self.st.try_borrow()) {
      st.phase = Phase::Closed;
      st.handlers = None;
      st.bytes_written = old.bytes_written;
      st.is_unix = old.is_unix;
      st.is_v6 = old.is_v6;
    }
    c
  }

  /// Keeps the tail of an `end(data)` for the background flush (see `linger`).
  pub(crate) fn keep_unsent(&self, rest: &[u8]) {
    if let Ok(mut st) = self.st.try_borrow_mut() {
      st.bytes_written += rest.len() as u64;
      if let Some(t) = st.tls.as_mut() {
        // TLS: the rest must be encrypted, not sent raw. The session takes it all (its buffer
        // limit lifted for this final chunk); the close then flushes the ciphertext, and what
        // the kernel does not take goes to the background flush.
        t.conn.set_buffer_limit(None);
        let _ = std::io::Write::write_all(&mut t.conn.writer(), rest);
      } else if let Some(p) = st.pending_tls() {
        // A client TLS session not started yet: the rest waits with the other early bytes.
        p.early.extend_from_slice(rest);
      } else {
        st.extra_mut().unsent = Some(rest.to_vec());
      }
    }
  }

  /// Closes the fd without calling JS (env teardown).
  pub(crate) fn teardown(&self) {
    if let Ok(mut st) = self.st.try_borrow_mut() {
      st.phase = Phase::Closed;
      st.io = None;
      st.handlers = None;
      st.listener = None;
      drop(st.take_pending());
      st.js = std::ptr::null_mut();
      st.counted = false;
    }
  }
}

/// Calls handler `ev` of `h` with `this = socket` and `(socket, ...args)`.
pub(crate) fn invoke(env: Env, h: &Handlers, ev: Event, socket: Value, args: &[Value]) -> Option<Called> {
  if !h.has(ev) {
    return None;
  }
  let (chunk, slot) = h.locate(env)?;
  let mut all = [std::ptr::null_mut(); 4];
  all[0] = socket;
  let n = args.len().min(3);
  all[1..=n].copy_from_slice(&args[..n]);
  Some(js::call_in_set(env, chunk, slot, ev as u32, socket, &all[..=n]))
}

/// Bun's rule for an exception thrown by a handler: the socket's `error` handler gets it; if
/// there is none, or it throws too, it becomes an `uncaughtException`.
pub(crate) fn route_error(env: Env, h: &Handlers, socket: Value, err: Value) {
  crate::debug::debug!("a handler threw; routing to {}", if h.has(Event::Error) { "error" } else { "uncaughtException" });
  match invoke(env, h, Event::Error, socket, &[err]) {
    None => js::fatal_exception(env, err),
    Some(Called::Threw(e2)) => js::fatal_exception(env, e2),
    Some(_) => {}
  }
}

/// The handler set a throw from `h`'s handler goes to: the socket's set as it is after the call
/// (a handler that called `reload()` and then threw reaches the new `error`, as in Bun), or `h`
/// once the socket has none (closed).
pub(crate) fn routed(conn: &Conn, h: Rc<Handlers>) -> Rc<Handlers> {
  conn.handlers().unwrap_or(h)
}

/// Calls handler `ev` on `conn`, routing a throw to `error`. Returns what the handler returned.
pub(crate) fn emit(env: Env, conn: &Conn, ev: Event, args: &[Value]) -> Option<Called> {
  let h = conn.handlers()?;
  let socket = conn.socket(env)?;
  let called = invoke(env, &h, ev, socket, args)?;
  if let Called::Threw(e) = called {
    route_error(env, &routed(conn, h), socket, e);
  }
  Some(called)
}

/// [`invoke`], with a throw routed by Bun's rule ([`route_error`]).
pub(crate) fn call_routed(env: Env, h: &Handlers, ev: Event, socket: Value, args: &[Value]) -> Option<Called> {
  let called = invoke(env, h, ev, socket, args)?;
  if let Called::Threw(e) = called {
    route_error(env, h, socket, e);
  }
  Some(called)
}

/// Runs `open`; a throw or a returned `Error` goes to `error` and closes the socket (spec §5.4).
pub(crate) fn emit_open(env: Env, conn: &Conn) {
  let Some(h) = conn.handlers() else { return };
  let Some(socket) = conn.socket(env) else { return };
  let failed = match invoke(env, &h, Event::Open, socket, &[]) {
    Some(Called::Threw(e)) => Some(e),
    Some(Called::Returned(v)) if js::is_error(env, v) => Some(v),
    _ => None,
  };
  if let Some(e) = failed {
    route_error(env, &routed(conn, h), socket, e);
    close(env, conn, How::Graceful, None);
  }
}
