//! `send(2)` and `recv(2)` on a socket fd, as every read and write of the hot paths makes them.
//!
//! On x86-64 Linux the system call is made directly: glibc's `send`/`recv` are thread
//! cancellation points, and each wraps the call in an enable/disable of asynchronous
//! cancellation (two calls and a TLS read; ~0.3 % of ping-pong cycles in `perf`), which nothing
//! here needs: the JS thread is never cancelled. Elsewhere they go through libc.

use std::io;
use std::os::fd::RawFd;

/// Sends without blocking and without SIGPIPE; the bytes the kernel took.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
  let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
  #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
  // SAFETY: sendto(fd, buf, len, flags, NULL, 0) reads at most `buf.len()` bytes of `buf`.
  let n = unsafe { raw::syscall6(libc::SYS_sendto, fd as usize, buf.as_ptr() as usize, buf.len(), flags as usize, 0, 0) };
  #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
  let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
  result(n)
}

/// Receives without blocking; `Ok(0)` is end of stream.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
  #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
  // SAFETY: recvfrom(fd, buf, len, flags, NULL, NULL) writes at most `buf.len()` bytes.
  let n = unsafe { raw::syscall6(libc::SYS_recvfrom, fd as usize, buf.as_mut_ptr() as usize, buf.len(), libc::MSG_DONTWAIT as usize, 0, 0) };
  #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
  let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
  result(n)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn result(n: isize) -> io::Result<usize> {
  // The kernel returns -errno (-4095..-1) on failure.
  if n < 0 {
    Err(io::Error::from_raw_os_error(-n as i32))
  } else {
    Ok(n as usize)
  }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn result(n: isize) -> io::Result<usize> {
  if n < 0 {
    Err(io::Error::last_os_error())
  } else {
    Ok(n as usize)
  }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod raw {
  /// A six-argument Linux system call (x86-64 convention: number in rax, arguments in rdi, rsi,
  /// rdx, r10, r8, r9; rcx and r11 are clobbered).
  pub(super) unsafe fn syscall6(nr: libc::c_long, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize, a6: usize) -> isize {
    let ret: isize;
    std::arch::asm!(
      "syscall",
      inlateout("rax") nr as isize => ret,
      in("rdi") a1,
      in("rsi") a2,
      in("rdx") a3,
      in("r10") a4,
      in("r8") a5,
      in("r9") a6,
      lateout("rcx") _,
      lateout("r11") _,
      options(nostack),
    );
    ret
  }
}
