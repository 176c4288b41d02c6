//! The address getters of `Socket` (`remoteAddress`, `remotePort`, `localAddress`, `localPort`,
//! `remoteFamily`/`localFamily`), split from `socket`, which lists them in the class.

use napi::sys::napi_value as Value;

use crate::class::Ctx;
use crate::conn::Phase;
use crate::conn_parts::{SEEN_LOCAL_ADDRESS, SEEN_LOCAL_PORT, SEEN_REMOTE_ADDRESS};
use crate::socket::SocketHandle;
use crate::sockopt;

/// The peer's (or with `local`, this side's) address for the getter `getter` (a `SEEN_*` bit, 0
/// for `remotePort`). Open TCP sockets answer and record the read; once closed, only the getters
/// read while open still answer (Bun and `node:net` cache what was read; `remotePort` forgets).
fn addr(s: &SocketHandle, local: bool, getter: u8) -> Option<std::net::SocketAddr> {
  let conn = s.conn();
  let mut st = conn.st.try_borrow_mut().ok()?;
  if st.is_unix {
    return None;
  }
  if st.phase != Phase::Open {
    if st.seen & getter == 0 || getter == 0 {
      return None;
    }
    return if local { st.extra().and_then(|x| x.local) } else { st.remote.as_ref().map(crate::conn::Remote::get) };
  }
  st.seen |= getter;
  if local {
    sockopt::local_addr(st.io.as_ref()?.fd())
  } else {
    st.remote.as_ref().map(crate::conn::Remote::get)
  }
}

fn address(c: &Ctx, a: Option<std::net::SocketAddr>) -> napi::Result<Value> {
  a.map_or_else(|| c.undefined(), |a| c.string(&a.ip().to_string()))
}

fn port(c: &Ctx, a: Option<std::net::SocketAddr>) -> napi::Result<Value> {
  a.map_or_else(|| c.undefined(), |a| c.number(f64::from(a.port())))
}

pub(crate) fn remote_address(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  address(c, addr(s, false, SEEN_REMOTE_ADDRESS))
}

pub(crate) fn remote_port(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  port(c, addr(s, false, 0))
}

pub(crate) fn local_address(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  address(c, addr(s, true, SEEN_LOCAL_ADDRESS))
}

pub(crate) fn local_port(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  port(c, addr(s, true, SEEN_LOCAL_PORT))
}

/// `remoteFamily`/`localFamily`: kept after close; `undefined` on unix sockets.
pub(crate) fn family(s: &SocketHandle, c: &Ctx) -> napi::Result<Value> {
  match s.conn().st.try_borrow() {
    Ok(st) if !st.is_unix => c.string(if st.is_v6 { "IPv6" } else { "IPv4" }),
    _ => c.undefined(),
  }
}
