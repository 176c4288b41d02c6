//! `NODE_DEBUG=bunnet`: one line per connect, accept, listen, close and error on stderr, in the
//! format of Node's own `util.debuglog` (`BUNNET <pid>: <message>`), like `NODE_DEBUG=net`.
//! Read once per process; when off, each call site costs one predictable branch.

use std::sync::OnceLock;

pub(crate) fn enabled() -> bool {
  static ON: OnceLock<bool> = OnceLock::new();
  *ON.get_or_init(|| {
    std::env::var("NODE_DEBUG").is_ok_and(|v| v.split([',', ' ']).any(|s| s.trim().eq_ignore_ascii_case("bunnet") || s.trim() == "*"))
  })
}

/// Writes one debug line (call through the `debug!` macro so the message is only formatted when
/// debugging is on).
pub(crate) fn log(msg: std::fmt::Arguments<'_>) {
  use std::io::Write;
  let _ = writeln!(std::io::stderr().lock(), "BUNNET {}: {}", std::process::id(), msg);
}

macro_rules! debug {
  ($($arg:tt)*) => {
    if $crate::debug::enabled() {
      $crate::debug::log(format_args!($($arg)*));
    }
  };
}
pub(crate) use debug;
