//! The read side of a TLS socket: ciphertext from the fd into the session, plaintext from the
//! session to `data`, honouring `pause()`/`resume()` (spec §6).

use std::io::{self, Read as _};

use super::{flush_state, handshake_done, handshake_or_fatal, TlsState};
use crate::conn::{self, Conn, How, Io, Phase};
use crate::handlers::Event;
use crate::js::{self, Called, Env, HandleScope};
use crate::readbuf::{self, Read};

struct FdReader(i32);

impl io::Read for FdReader {
  fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
    crate::fdio::recv(self.0, buf)
  }
}

enum Step {
  /// Fed; `true` when there may be more to read right away.
  Fed(bool),
  Eof,
  Failed(io::Error),
  Stop,
  Tls(rustls::Error),
}

const READ_CHUNK: usize = 64 * 1024;
/// A read whose untaken rest is at least this long hands its whole buffer to the connection
/// instead of copying the rest out (in bulk, ~48 KiB of each 64 KiB read).
const HAND_OVER: usize = 16 * 1024;
/// Read buffers kept per thread for reuse once a connection has consumed the one it was handed.
const SPARES: usize = 2;

thread_local! {
  /// The buffer ciphertext is read into (`READ_CHUNK` long; empty after a hand-over until the
  /// next read refills it).
  static CIPHER_IN: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK]);
  static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Makes `buf` a whole read buffer again: a spare one (its tail past the last read zeroed again
/// only where it was cut short) or a new one.
fn refill(buf: &mut Vec<u8>) {
  if buf.len() == READ_CHUNK {
    return;
  }
  let spare = SPARE.with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()));
  *buf = spare.unwrap_or_default();
  buf.resize(READ_CHUNK, 0);
}

/// Keeps a consumed read buffer for the next [`refill`] (at most [`SPARES`] per thread).
fn give_back(buf: Vec<u8>) {
  if buf.capacity() == READ_CHUNK {
    SPARE.with(|s| {
      if let Ok(mut s) = s.try_borrow_mut() {
        if s.len() < SPARES {
          s.push(buf);
        }
      }
    });
  }
}

impl TlsState {
  /// Ciphertext read but not yet taken by the session.
  fn leftover(&self) -> &[u8] {
    &self.inbuf[self.inbuf_off..]
  }

  /// Feeds the `n` fresh bytes of ciphertext in `buf` to the session, processing records as
  /// they complete; what it does not take (its plaintext buffer is full) is kept for
  /// [`TlsState::feed_leftover`]: a long rest by taking `buf` itself (the caller refills it), a
  /// short one as a copy.
  fn feed(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<(), rustls::Error> {
    let fresh = buf.get(..n).unwrap_or_default();
    if let Some(w) = self.watch.as_mut() {
      w.received(fresh);
    }
    if !self.leftover().is_empty() {
      self.inbuf.extend_from_slice(fresh);
      return self.feed_leftover().map(|_| ());
    }
    let (used, result) = self.feed_slice(fresh);
    if used < fresh.len() {
      if fresh.len() - used >= HAND_OVER {
        let mut whole = std::mem::take(buf);
        whole.truncate(n);
        self.inbuf = whole;
        self.inbuf_off = used;
      } else {
        self.inbuf = fresh[used..].to_vec();
        self.inbuf_off = 0;
      }
    }
    result
  }

  /// Feeds kept ciphertext (no copying: an offset moves); returns how much the session took.
  fn feed_leftover(&mut self) -> Result<usize, rustls::Error> {
    let data = std::mem::take(&mut self.inbuf);
    let (used, result) = self.feed_slice(&data[self.inbuf_off..]);
    self.inbuf_off += used;
    if self.inbuf_off < data.len() {
      self.inbuf = data;
    } else {
      self.inbuf_off = 0;
      give_back(data);
    }
    result.map(|()| used)
  }

  /// (bytes consumed, outcome) for one pass over `data`.
  fn feed_slice(&mut self, data: &[u8]) -> (usize, Result<(), rustls::Error>) {
    let mut consumed = 0;
    while consumed < data.len() {
      let mut rd = &data[consumed..];
      match self.conn.read_tls(&mut rd) {
        Ok(0) | Err(_) => break,
        Ok(n) => consumed += n,
      }
      if let Err(e) = self.process() {
        return (consumed, Err(e));
      }
    }
    (consumed, Ok(()))
  }

  /// Fills `out` with plaintext: what the session holds, then what it decrypts from the kept
  /// ciphertext, so one `data` event carries up to a whole chunk (the session itself holds at
  /// most ~16 KiB of plaintext). `Ok(0)`: close_notify; `WouldBlock`: nothing yet.
  fn fill(&mut self, out: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    let mut eof = false;
    while n < out.len() {
      match self.conn.reader().read(&mut out[n..]) {
        Ok(0) => {
          eof = true;
          break;
        }
        Ok(k) => n += k,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
          if self.leftover().is_empty() || self.failed.is_some() {
            break;
          }
          match self.feed_leftover() {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => self.failed = Some(e),
          }
        }
        Err(e) if n == 0 => return Err(e),
        Err(_) => break,
      }
    }
    match n {
      0 if eof => Ok(0),
      0 => Err(io::Error::from(io::ErrorKind::WouldBlock)),
      n => Ok(n),
    }
  }
}

/// Reads ciphertext in 64 KiB chunks until the socket is drained (edge-triggered), feeding the
/// session; plaintext is delivered after each chunk. (rustls's own `read_tls` reads 4 KiB at a
/// time: one syscall per 4 KiB.)
pub(super) fn on_readable(env: Env, c: &Conn, hup: bool) {
  loop {
    let mut tapped = None;
    let step = {
      let Ok(mut st) = c.st.try_borrow_mut() else { return };
      if st.phase != Phase::Open || st.paused || st.read_eof {
        return;
      }
      let Some(fd) = st.io.as_ref().map(Io::fd) else { return };
      let Some(t) = st.tls.as_mut() else { return };
      if !t.leftover().is_empty() {
        match t.feed_leftover() {
          // No progress (plaintext still not delivered, e.g. no data handler yet): stop here;
          // the next readiness or resume() comes back to it.
          Ok(0) => Step::Stop,
          Ok(_) => Step::Fed(true),
          Err(e) => Step::Tls(e),
        }
      } else {
        let read = CIPHER_IN.with(|b| {
          let Ok(mut buf) = b.try_borrow_mut() else { return Err(io::Error::from(io::ErrorKind::WouldBlock)) };
          refill(&mut buf);
          let n = FdReader(fd).read(&mut buf)?;
          if t.tap.is_some() && n > 0 {
            tapped = Some(buf[..n].to_vec());
          }
          Ok((n, n == READ_CHUNK, t.feed(&mut buf, n)))
        });
        match read {
          Ok((0, _, _)) => Step::Eof,
          Ok((_, full, Ok(()))) => Step::Fed(full),
          Ok((_, _, Err(e))) => Step::Tls(e),
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Stop,
          Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
          Err(e) => Step::Failed(e),
        }
      }
    };
    if let Some(bytes) = tapped {
      // upgradeTLS: the original handlers see the ciphertext (through `raw`) first, as in Bun.
      deliver_tap(env, c, &bytes);
    }
    match step {
      Step::Fed(more) => {
        after_packets(env, c);
        let pending = c.st.try_borrow().ok().and_then(|st| st.tls.as_ref().map(|t| !t.leftover().is_empty())).unwrap_or(false);
        if !more && !hup && !pending {
          return;
        }
      }
      Step::Eof => return on_eof(env, c),
      Step::Failed(e) => {
        // Also during the handshake: a reset is `close(ECONNRESET)` alone, no `handshake` call
        // (Bun 1.4.5, both sides; a FIN there is a failed handshake, see `on_eof`).
        let err = crate::error::SysError::from_io(&e, "read").to_js(env);
        return conn::close(env, c, How::Gone, Some(err));
      }
      Step::Tls(e) => return handshake_or_fatal(env, c, Err(e)),
      Step::Stop => return,
    }
  }
}

/// `resume()`: delivers the plaintext the session kept while paused, then goes on with the
/// ciphertext kept in `inbuf` and what the socket holds.
pub(crate) fn on_resume(env: Env, c: &Conn) {
  deliver_plaintext(env, c);
  on_readable(env, c, false);
}

/// After new records: report a finished handshake, deliver plaintext, flush.
fn after_packets(env: Env, c: &Conn) {
  let finished = c.st.try_borrow().ok().and_then(|st| st.tls.as_ref().map(|t| !t.done && !t.conn.is_handshaking())).unwrap_or(false);
  if finished {
    // This side's last handshake flight goes out first: the peer can finish sooner, and the
    // handshake handler sees this side's own Finished message (TLS 1.2) already.
    if let Ok(mut st) = c.st.try_borrow_mut() {
      flush_state(&mut st);
    }
    handshake_done(env, c);
  }
  deliver_plaintext(env, c);
  if let Ok(mut st) = c.st.try_borrow_mut() {
    flush_state(&mut st);
  }
}

fn deliver_plaintext(env: Env, c: &Conn) {
  loop {
    let _hs = HandleScope::open(env);
    let Some(h) = c.handlers() else { return };
    let r = {
      let Ok(mut guard) = c.st.try_borrow_mut() else { return };
      let st = &mut *guard;
      if st.phase != Phase::Open || st.paused {
        return;
      }
      let Some(t) = st.tls.as_mut() else { return };
      if !t.done {
        return;
      }
      readbuf::read_from(env, h.binary_type, &mut st.read_size, |b| t.fill(b))
    };
    match r {
      Read::Data(chunk, _) => {
        if let Some(socket) = c.socket(env) {
          if let Some(Called::Threw(e)) = readbuf::deliver(env, &h, socket, chunk) {
            conn::route_error(env, &conn::routed(c, h), socket, e);
          }
        }
      }
      // close_notify: the peer finished sending.
      Read::Eof => return on_eof(env, c),
      Read::Failed(_) | Read::Stop => {
        let failed = c.st.try_borrow_mut().ok().and_then(|mut st| st.tls.as_mut().and_then(|t| t.failed.take()));
        if let Some(e) = failed {
          handshake_or_fatal(env, c, Err(e));
        }
        return;
      }
    }
  }
}

fn on_eof(env: Env, c: &Conn) {
  let done = c.st.try_borrow().ok().and_then(|st| st.tls.as_ref().map(|t| t.done)).unwrap_or(true);
  if !done {
    return handshake_or_fatal(env, c, Ok(()));
  }
  // After this side's own shutdown(), a TLS socket still gets `end` when the peer finishes, as in
  // Bun (plain sockets go straight to `close`, spec §5.2).
  let after_own_shutdown = c.st.try_borrow_mut().is_ok_and(|mut st| {
    let yes = st.write_shut && st.phase == Phase::Open && st.extra().and_then(|x| x.reset).is_none();
    if yes {
      st.read_eof = true;
    }
    yes
  });
  if after_own_shutdown {
    conn::emit(env, c, Event::End, &[]);
    return conn::close(env, c, How::Graceful, None);
  }
  conn::on_eof(env, c);
}

/// `data(raw, ciphertext)` for the handlers the socket had before `upgradeTLS()`.
fn deliver_tap(env: Env, c: &Conn, bytes: &[u8]) {
  let _hs = HandleScope::open(env);
  let Some((slot, raw)) = c.st.try_borrow().ok().and_then(|st| st.tls.as_ref()?.tap.as_ref().map(|t| (t.handlers.clone(), t.raw))) else { return };
  let Some(h) = slot.current() else { return };
  let Ok(socket) = js::deref(env, raw) else { return };
  let v = crate::handlers::data_value(env, h.binary_type, bytes);
  conn::call_routed(env, &h, Event::Data, socket, &[v]);
}
