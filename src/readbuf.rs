//! Where the bytes a `data` handler receives live.
//!
//! For the default `binaryType: "buffer"`, reads go straight into a shared 256 KiB JS
//! ArrayBuffer (the slab) and the handler gets a `Buffer` view of its chunk, made in JS (`batch`'s
//! loop or a tiny trampoline, with the class `Buffer.from(slab, offset, length)` ends in: see
//! [`view_fn`]), as Node's own sockets hand out views of pooled memory. That saves the per-chunk
//! malloc, backing-store registration and copy of `napi_create_buffer_copy`. `arraybuffer`/`uint8array` need standalone memory: those are read
//! into a scratch buffer and copied once.
//!
//! The slab's pointer is re-read (and its attachment checked) right before every read, with no
//! JS running in between, so a slab detached or transferred by user code is never written to.
//!
//! Streams: after a read of 16 KiB or more, a socket's next read goes into a 64 KiB buffer of its
//! own, not zero-filled (what the read did not write is zeroed before JS sees it). When a read
//! filled that buffer and the next one finds data too (a burst: the sender is ahead), reads go
//! into 120 KiB buffers until one returns 64 KiB or less. A read that fills less than half of a
//! buffer of its own is copied into the slab and the buffer kept for the next read, so no chunk
//! pins more than twice its size. Bulk data
//! through zero-filled 256 KiB slabs cost a `memset` per byte, and glibc gave the slabs' memory
//! back to the kernel between V8's collections, so that the next ones page-faulted it in again
//! (1 GiB received: ~36k page faults in one process; ~13k this way). Small reads, the common
//! case of request/response traffic, stay in the slab, packed.

use std::cell::RefCell;
use std::io;

use napi::sys;

use crate::conn::Io;
use crate::handlers::{data_value, BinaryType, Event, Handlers};
use crate::js::{self, Called, Env, Value};

const SLAB: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;
/// The size of a socket's own buffer during a burst: below glibc's default mmap threshold (128
/// KiB), so its memory comes from the heap, not from a fresh mapping that faults in page by page.
/// 1 GiB in one process went from ~1,650 MB/s in 64 KiB reads to ~2,100-2,300 in 96-127 KiB ones
/// (half the reads, syscalls and `data` events); 248 and 512 KiB gained less.
const OWN: usize = 120 * 1024;
const _: () = assert!(OWN / 2 <= CHUNK && CHUNK < OWN);
/// Reads of this size or more predict more like them on the same socket.
const LARGE: usize = 16 * 1024;

struct State {
  env: Env,
  slab: sys::napi_ref,
  /// Counts the slabs made (see [`slab_gen`]).
  gen: u32,
  used: usize,
  trampoline: sys::napi_ref,
  scratch: Box<[u8]>,
  /// Per size (`CHUNK`, `OWN`), a buffer of its own that a read found nothing for (or copied
  /// out of): never seen by JS, kept for the next.
  spare: [sys::napi_ref; 2],
}

thread_local! {
  static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// One read's worth of bytes, ready for the `data` handler.
pub(crate) enum Chunk {
  /// `[off, off + len)` of the slab ArrayBuffer `ab`.
  View {
    ab: Value,
    off: usize,
    len: usize,
  },
  Value(Value),
}

pub(crate) enum Read {
  Data(Chunk, bool),
  Eof,
  Failed(io::Error),
  Stop,
}

/// A function `(ab, offset, length)` that makes the `Buffer` view of a chunk: a `new` of
/// `Buffer[Symbol.species]` (Node's `FastBuffer`, the class `Buffer.from(ab, offset, length)` ends
/// in, so the view is the same object) once a test view shows it makes Buffers, else
/// `Buffer.from`. The offsets are the reader's own, always in range, so `Buffer.from`'s argument
/// checks (among them a C++ call, `isAnyArrayBuffer`) are skipped: ~15 ns less per event.
pub(crate) fn view_fn(env: Env) -> Option<Value> {
  let src = "'use strict'; (B) => { let F = null; \
    try { const f = B[Symbol.species]; if (typeof f === 'function' && Object.getPrototypeOf(new f(new ArrayBuffer(1), 0, 1)) === B.prototype) F = f } catch {} \
    return F === null ? function bunnetView(ab, o, n) { return B.from(ab, o, n) } : function bunnetView(ab, o, n) { return new F(ab, o, n) } }";
  let f = js::from_script(env, src, &[js::get(env, js::global(env), "Buffer").ok()?]);
  if f.is_err() {
    // A script that cannot run (e.g. with `Buffer` replaced by a throwing accessor) must not leave
    // its exception for the next handler.
    let _ = js::take_exception(env);
  }
  f.ok()
}

fn init(env: Env) -> Option<State> {
  // `c[i][D]` is the `data` handler in its registry chunk (see `Handlers::data_place`); `t`: called at
  // top level, so run the tick queue after it (see `js::TopLevel`). The view maker is made once
  // (`view_fn`; the `Buffer` global is an accessor in Node).
  // A throw from the handler skips the tick, as before; the tick queue's own throws are uncaught
  // exceptions, never the handler's (`calls::tick_fn`).
  let src = "(V, tick) => function bunnetData(c, i, s, ab, o, n, t) { \
    const r = c[i][D].call(s, s, V(ab, o, n)); if (t) tick(); return r }";
  let src = src.replace("[D]", &format!("[{}]", crate::handlers::DATA_INDEX));
  let captured = [view_fn(env)?, crate::calls::tick_fn(env).unwrap_or_else(|| js::undefined(env))];
  let f = js::from_script(env, &src, &captured).ok()?;
  let trampoline = js::reference(env, f).ok()?;
  Some(State { env, slab: std::ptr::null_mut(), gen: 0, used: SLAB, trampoline, scratch: vec![0; CHUNK].into_boxed_slice(), spare: [std::ptr::null_mut(); 2] })
}

impl State {
  /// The current slab with at least one chunk of room: (ArrayBuffer, base pointer).
  fn slab(&mut self) -> Option<(Value, *mut u8)> {
    let env = self.env;
    if self.used + CHUNK <= SLAB {
      if let Some(slab) = attached(env, self.slab, SLAB) {
        return Some(slab);
      }
    }
    // Zero-filled on purpose: a non-zero-filled 256 KiB backing store (napi_create_buffer) is a
    // fresh mmap each time and its page faults cost more than the memset (bulk 1,984 -> 1,601
    // MB/s in bench/RESULTS.md when tried).
    let mut p = std::ptr::null_mut();
    let mut ab = std::ptr::null_mut();
    js::check(unsafe { sys::napi_create_arraybuffer(env, SLAB, &mut p, &mut ab) }).ok()?;
    js::delete_reference(env, self.slab);
    self.slab = js::reference(env, ab).ok()?;
    self.gen = self.gen.wrapping_add(1);
    self.used = 0;
    Some((ab, p.cast()))
  }

  /// A `cap`-byte buffer of its own (`CHUNK` or `OWN`), not zero-filled: (ArrayBuffer, base pointer).
  fn own_buffer(&mut self, cap: usize) -> Option<(Value, *mut u8)> {
    let env = self.env;
    let spare = std::mem::replace(self.spare_slot(cap), std::ptr::null_mut());
    let kept = attached(env, spare, cap);
    js::delete_reference(env, spare);
    kept.or_else(|| js::arraybuffer_uninit(env, cap))
  }

  /// Keeps `ab`, a `cap`-byte buffer of its own that no JS has seen, for the next read that
  /// needs one.
  fn keep(&mut self, ab: Value, cap: usize) {
    let env = self.env;
    let slot = self.spare_slot(cap);
    if slot.is_null() {
      *slot = js::reference(env, ab).unwrap_or(std::ptr::null_mut());
    }
  }

  /// Where a kept `cap`-byte buffer lives.
  fn spare_slot(&mut self, cap: usize) -> &mut sys::napi_ref {
    &mut self.spare[usize::from(cap == OWN)]
  }

  /// Takes `n` bytes of the slab, written at `used`, keeping the next chunk 8-byte aligned.
  fn advance(&mut self, n: usize) {
    self.used += (n + 7) & !7;
  }
}

/// The ArrayBuffer behind `r` and its base pointer, if `r` is set and the buffer still has its
/// `len` bytes (not detached or transferred by user code).
fn attached(env: Env, r: sys::napi_ref, len: usize) -> Option<(Value, *mut u8)> {
  if r.is_null() {
    return None;
  }
  let ab = js::deref(env, r).ok()?;
  let (mut p, mut n) = (std::ptr::null_mut(), 0usize);
  unsafe { sys::napi_get_arraybuffer_info(env, ab, &mut p, &mut n) };
  (n == len && !p.is_null()).then_some((ab, p.cast()))
}

fn classify(r: io::Result<usize>, cap: usize, make: impl FnOnce(usize) -> Chunk) -> Option<Read> {
  match r {
    Ok(0) => Some(Read::Eof),
    Ok(n) => Some(Read::Data(make(n), n == cap)),
    Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Read::Stop),
    Err(e) => Some(Read::Failed(e)),
  }
}

/// Reads once from `io` into memory suited to `bt`; `size` is the socket's read-size
/// prediction, kept between calls (see the module doc).
pub(crate) fn read(env: Env, io: &Io, bt: BinaryType, size: &mut ReadSize) -> Read {
  read_from(env, bt, size, |b| io.read(b))
}

/// Reads once through `source` (a socket, or a TLS session's plaintext) into memory suited to `bt`.
pub(crate) fn read_from(env: Env, bt: BinaryType, size: &mut ReadSize, mut source: impl FnMut(&mut [u8]) -> io::Result<usize>) -> Read {
  STATE.with(|cell| {
    let Ok(mut guard) = cell.try_borrow_mut() else { return Read::Stop };
    if guard.is_none() {
      *guard = init(env);
    }
    let Some(st) = guard.as_mut() else { return Read::Stop };
    loop {
      let outcome = if bt == BinaryType::Buffer && *size != ReadSize::Small {
        let cap = size.capacity();
        let Some((ab, base)) = st.own_buffer(cap) else {
          *size = ReadSize::Small;
          return Read::Stop;
        };
        // SAFETY: `base` is the `cap`-byte backing store of `ab`, which no JS has seen yet.
        let buf = unsafe { std::slice::from_raw_parts_mut(base, cap) };
        let r = source(buf);
        match r {
          Ok(n) if n > 0 => {
            *size = size.after(n);
            // A short read is copied into the slab and the buffer kept for the next read, so
            // that no chunk handed out in a buffer of its own pins more than twice its size.
            if n < cap / 2 {
              if let (Some(bytes), Some((sab, sbase))) = (buf.get(..n), st.slab()) {
                let off = st.used;
                // SAFETY: `slab()` left room for `CHUNK` bytes at `off`, and `n < cap / 2 <= CHUNK`.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), sbase.add(off), n) };
                st.advance(n);
                st.keep(ab, cap);
                return Read::Data(Chunk::View { ab: sab, off, len: n }, false);
              }
            }
            // Nothing unwritten may be visible through `.buffer`.
            if let Some(tail) = buf.get_mut(n..) {
              tail.fill(0);
            }
          }
          // Nothing read (the socket or session is drained, or at its end): kept for the next
          // read, unseen.
          _ => {
            *size = size.drained();
            st.keep(ab, cap);
          }
        }
        classify(r, cap, |len| Chunk::View { ab, off: 0, len })
      } else if bt == BinaryType::Buffer {
        let Some((ab, base)) = st.slab() else { return Read::Stop };
        let off = st.used;
        // SAFETY: `base` is the live backing store of `ab` (checked just above) and
        // `off + CHUNK <= SLAB`; no JS runs until the read returns.
        let buf = unsafe { std::slice::from_raw_parts_mut(base.add(off), CHUNK) };
        let r = source(buf);
        if let Ok(n) = r {
          st.advance(n);
          *size = size.after(n);
        }
        classify(r, CHUNK, |len| Chunk::View { ab, off, len })
      } else {
        let r = source(&mut st.scratch);
        let scratch = &st.scratch;
        classify(r, CHUNK, |n| Chunk::Value(data_value(env, bt, &scratch[..n])))
      };
      if let Some(o) = outcome {
        return o;
      }
    }
  })
}

/// A socket's prediction of its next read's size, from the last ones (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReadSize {
  /// Small reads: into the shared slab.
  Small,
  /// Reads of `LARGE` or more: into a `CHUNK`-byte buffer of its own.
  Chunk,
  /// The last read filled its `CHUNK` buffer: the next also goes into one; if that one finds
  /// data too, the socket is in a burst.
  Filled,
  /// A burst (more arrives than a `CHUNK` holds): reads go into an `OWN`-byte buffer.
  Burst,
}

impl ReadSize {
  /// How much one read may take: a buffer of its own's size, or a slab chunk's.
  fn capacity(self) -> usize {
    if self == ReadSize::Burst {
      OWN
    } else {
      CHUNK
    }
  }

  /// After a read of `n > 0` bytes into `self.capacity()` bytes of room.
  fn after(self, n: usize) -> ReadSize {
    match self {
      _ if n < LARGE => ReadSize::Small,
      ReadSize::Filled => ReadSize::Burst,
      ReadSize::Burst if n > CHUNK => ReadSize::Burst,
      ReadSize::Burst => ReadSize::Chunk,
      _ if n == CHUNK => ReadSize::Filled,
      _ => ReadSize::Chunk,
    }
  }

  /// After a read that found nothing: a filled buffer was all there was.
  fn drained(self) -> ReadSize {
    if self == ReadSize::Filled {
      ReadSize::Chunk
    } else {
      self
    }
  }
}

/// Calls `data(socket, chunk)` with `this = socket`.
pub(crate) fn deliver(env: Env, h: &Handlers, socket: Value, chunk: Chunk) -> Option<Called> {
  match chunk {
    Chunk::Value(v) => crate::conn::invoke(env, h, Event::Data, socket, &[v]),
    Chunk::View { ab, off, len } => {
      let (chunk_arr, index) = h.data_place(env)?;
      let tramp = STATE.with(|c| c.try_borrow().ok().and_then(|g| g.as_ref().map(|s| s.trampoline)))?;
      let tramp = js::deref(env, tramp).ok()?;
      let ticking = js::ticking_top(env);
      let args = [chunk_arr, js::uint(env, index), socket, ab, js::uint(env, off as u32), js::uint(env, len as u32), js::boolean(env, ticking)];
      if ticking || !js::at_top() {
        Some(js::call_plain(env, socket, tramp, &args))
      } else {
        Some(js::call(env, socket, tramp, &args))
      }
    }
  }
}

/// The current slab: a `Chunk::View` that a read of `ReadSize::Small` returned lies in it.
pub(crate) fn slab_now(env: Env) -> Option<Value> {
  let slab = STATE.with(|c| c.try_borrow().ok().and_then(|g| g.as_ref().map(|s| s.slab)))?;
  js::deref(env, slab).ok()
}

/// The current slab's generation, which changes with every new slab (see [`slab_now`]).
pub(crate) fn slab_gen() -> u32 {
  STATE.with(|c| c.try_borrow().ok().and_then(|g| g.as_ref().map(|s| s.gen))).unwrap_or(0)
}

/// Env teardown: forget the references (the environment frees them).
pub(crate) fn teardown() {
  STATE.with(|c| {
    if let Ok(mut g) = c.try_borrow_mut() {
      *g = None;
    }
  });
}
