//! Socket creation and options through socket2: bind with `reusePort`/`exclusive`/`ipv6Only`,
//! TCP_NODELAY, keep-alive, and SO_LINGER 0 for `terminate()`.

use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

/// Backlog for listeners (Node and Bun use 511/512; a deeper queue helps connect bursts).
const BACKLOG: i32 = 1024;

/// Borrows `fd` as a socket2 `Socket` without taking ownership.
fn borrowed(fd: RawFd) -> ManuallyDrop<Socket> {
  // SAFETY: the fd is owned by a live mio socket for the duration of the call, and
  // ManuallyDrop keeps socket2 from closing it.
  ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) })
}

pub(crate) fn set_nodelay(fd: RawFd, on: bool) -> bool {
  borrowed(fd).set_tcp_nodelay(on).is_ok()
}

/// Whether TCP_NODELAY is on (`false` if it cannot be read).
pub(crate) fn nodelay(fd: RawFd) -> bool {
  borrowed(fd).tcp_nodelay().unwrap_or(false)
}

/// SO_KEEPALIVE, and with it TCP_KEEPIDLE = `delay_ms`/1000 (at least 1 s), 1 s interval,
/// 10 probes, as Bun does.
pub(crate) fn set_keepalive(fd: RawFd, on: bool, delay_ms: f64) -> bool {
  let s = borrowed(fd);
  if !on {
    return s.set_keepalive(false).is_ok();
  }
  let idle = Duration::from_secs(((delay_ms / 1000.0).floor() as u64).max(1));
  let ka = socket2::TcpKeepalive::new().with_time(idle).with_interval(Duration::from_secs(1)).with_retries(10);
  s.set_tcp_keepalive(&ka).is_ok()
}

/// Reads and discards what is waiting in the receive queue (bounded): closing a socket with
/// unread data makes the kernel send RST and drop whatever we had queued for the peer. Used
/// before graceful closes that must deliver (TLS, where the peer's session tickets are typically
/// unread, and the background flush of `end(data)`).
pub(crate) fn discard_input(fd: RawFd) {
  drop_input(fd, 64);
}

/// What [`drop_input`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Input {
  /// The receive queue is empty for now.
  Empty,
  /// The peer's FIN, or an error: nothing more will come.
  Ended,
  /// `reads` ran out first.
  More,
}

/// Reads and drops what is waiting, at most `reads` reads of 16 KiB; returns what it found and
/// whether any byte came.
pub(crate) fn drop_input(fd: RawFd, reads: usize) -> (Input, bool) {
  let mut buf = [0u8; 16 * 1024];
  let mut got = false;
  for _ in 0..reads {
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n > 0 {
      got = true;
      continue;
    }
    return match (n, io::Error::last_os_error().raw_os_error()) {
      (0, _) => (Input::Ended, got),
      (_, Some(libc::EAGAIN)) => (Input::Empty, got),
      (_, Some(libc::EINTR)) => continue,
      _ => (Input::Ended, got),
    };
  }
  (Input::More, got)
}

/// Bytes sent but not yet acknowledged by the peer (`SIOCOUTQ`; 0 when unknown).
pub(crate) fn unacked(fd: RawFd) -> usize {
  let mut n: libc::c_int = 0;
  // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int.
  let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
  if r < 0 {
    0
  } else {
    usize::try_from(n).unwrap_or(0)
  }
}

/// Makes the next close send RST instead of FIN.
pub(crate) fn linger_zero(fd: RawFd) {
  let _ = borrowed(fd).set_linger(Some(Duration::ZERO));
}

pub(crate) fn local_addr(fd: RawFd) -> Option<SocketAddr> {
  borrowed(fd).local_addr().ok()?.as_socket()
}

/// A listening, non-blocking TCP socket on `addr`.
pub(crate) fn bind_tcp(addr: SocketAddr, exclusive: bool, reuse_port: bool, ipv6_only: bool) -> io::Result<mio::net::TcpListener> {
  let s = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking().cloexec(), None)?;
  if addr.is_ipv6() {
    s.set_only_v6(ipv6_only)?;
  }
  // SO_REUSEADDR as libuv sets it (quick rebinding after TIME_WAIT); it never lets two
  // listeners share a port on Linux. `exclusive` turns it off.
  s.set_reuse_address(!exclusive)?;
  if reuse_port && !exclusive {
    s.set_reuse_port(true)?;
  }
  // Copied to accepted sockets where the system does (Linux): see `listener::adopt`.
  let _ = s.set_tcp_nodelay(true);
  s.bind(&addr.into())?;
  s.listen(BACKLOG)?;
  Ok(mio::net::TcpListener::from_std(s.into()))
}

/// A listening unix-domain socket; a leading NUL names a Linux abstract socket.
pub(crate) fn bind_unix(path: &str) -> io::Result<mio::net::UnixListener> {
  let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
  s.bind(&unix_addr(path)?)?;
  s.listen(BACKLOG)?;
  Ok(mio::net::UnixListener::from_std(s.into()))
}

/// Starts a non-blocking connect to a unix path.
pub(crate) fn connect_unix(path: &str) -> io::Result<mio::net::UnixStream> {
  let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
  match s.connect(&unix_addr(path)?) {
    Ok(()) => {}
    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
    // A non-blocking unix connect to a listener whose accept queue is full: refused, as Bun
    // reports it (the kernel's EAGAIN would read as "try again" to the caller).
    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
    Err(e) => return Err(e),
  }
  Ok(mio::net::UnixStream::from_std(s.into()))
}

/// Starts a non-blocking TCP connect.
pub(crate) fn connect_tcp(addr: SocketAddr) -> io::Result<mio::net::TcpStream> {
  let s = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking().cloexec(), None)?;
  let _ = s.set_tcp_nodelay(true);
  match s.connect(&addr.into()) {
    Ok(()) => {}
    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
    Err(e) => return Err(e),
  }
  Ok(mio::net::TcpStream::from_std(s.into()))
}

/// `sun_path` for `path` (a leading NUL names a Linux abstract socket); too long a path is
/// EINVAL as from the kernel.
fn unix_addr(path: &str) -> io::Result<SockAddr> {
  let einval = || io::Error::from_raw_os_error(libc::EINVAL);
  SockAddr::unix(path).map_err(|e| if e.raw_os_error().is_some() { e } else { einval() })
}

#[cfg(test)]
mod tests {
  use std::io;
  use std::os::fd::AsRawFd;

  /// `listener::adopt` skips TCP_NODELAY on accepted sockets where they inherit the listener's;
  /// on Linux they do, and an accepted socket has it on.
  #[test]
  fn accepted_sockets_have_nodelay() -> io::Result<()> {
    let listener = super::bind_tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), false, false, false)?;
    assert!(super::nodelay(listener.as_raw_fd()));
    let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let accepted = loop {
      match listener.accept() {
        Ok((s, _)) => break s,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
        Err(e) => return Err(e),
      }
    };
    #[cfg(target_os = "linux")]
    assert!(super::nodelay(accepted.as_raw_fd()), "Linux copies TCP_NODELAY to accepted sockets");
    drop(accepted);
    Ok(())
  }
}
