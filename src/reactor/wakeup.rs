//! One wake-up of the reactor: what libuv's dispatch hands the `uv_poll_t`, then re-polls and
//! (direct mode) waits in libuv's own epoll set for the next events, within the budgets that keep
//! timers and other handles from starving; each event goes to its socket, listener or flush, or
//! to `batch`'s queue, whose JS loop then runs the wake-up's later rounds ([`advance`]).

use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::time::{Duration, Instant};

use super::{enter_js, env, with, Entry, Reactor};
use crate::js::{Env, HandleScope};
use crate::poller::{self, Decoded, Raw};
use crate::uv;

/// How many extra zero-timeout polls one wake-up may do: replies caused by our own handlers
/// (a local peer echoing) are picked up without another trip through libuv's epoll_wait, while
/// the bounds keep timers and other handles from starving.
const SPIN_ROUNDS: u32 = 64;
/// Longest one wait of a wake-up in libuv's epoll set (direct mode; see `on_poll`).
const OWN_WAIT_CAP_MS: c_int = 100;
/// Consecutive empty re-polls after which `on_poll` stops re-polling (see there).
const SPIN_MISSES_TO_SKIP: u32 = 8;
/// Events after which a wake-up stops re-polling and returns to libuv (timers, other handles).
const SPIN_EVENT_BUDGET: usize = 256;
/// Time after which a wake-up stops re-polling, whatever the event count (TLS handshakes cost
/// about a millisecond of CPU each, so counting events alone let timers slip by 60 ms).
const SPIN_TIME_BUDGET: Duration = Duration::from_millis(2);

impl Reactor {
  /// Leaves direct mode: every registration in libuv's set moves to the nested set.
  fn fall_back(&mut self) {
    self.poller.fall_back();
    for (token, e) in self.entries.all() {
      let reg = match &e {
        Entry::Conn(c) => c.st.try_borrow().ok().and_then(|st| st.io.as_ref().map(|io| (io.fd(), poller::CONN))),
        Entry::Listener(l) => l.fd().map(|fd| (fd, poller::READ)),
        Entry::Linger(l) => l.fd().map(|fd| (fd, l.interest())),
      };
      if let Some((fd, interest)) = reg {
        self.poller.migrate(fd, token, interest);
      }
    }
  }

  /// The readiness reports of one round of a wake-up: on its first round libuv's dispatch (direct)
  /// or the nested set, later a wait in libuv's set (direct) or a zero-timeout re-poll (nested).
  /// `true` if other handles' fds were found ready too: the wake-up then ends after this round,
  /// so libuv gets to them at once.
  fn gather(&mut self, round: Round, raw: &mut Vec<Raw>) -> bool {
    raw.clear();
    if let Round::Wait(ms) = round {
      self.poller.wait(raw, ms);
    } else if matches!(round, Round::Dispatch) {
      if !self.poller.take_dispatch(raw) {
        self.fall_back();
      }
      if !self.poller.is_direct() {
        self.poller.poll_nested(raw);
        return false;
      }
    } else {
      self.poller.poll_now(raw);
    }
    let (mut nested, mut foreign) = (false, false);
    for r in raw.iter() {
      match self.poller.decode(*r) {
        Decoded::Nested => nested = true,
        Decoded::Foreign => foreign = true,
        _ => {}
      }
    }
    if nested {
      self.poller.poll_nested(raw);
    }
    foreign
  }

  /// The entry a readiness report is for, with the report.
  fn resolve(&self, raw: Raw) -> Option<(Entry, poller::Ready)> {
    let (token, bits) = match self.poller.decode(raw) {
      Decoded::Token(t, bits) => (t, bits),
      Decoded::Tagged(idx, gen, bits) => (self.entries.token_at(idx, gen)?, bits),
      Decoded::Nested | Decoded::Foreign => return None,
    };
    Some((self.entries.get(token)?, poller::Ready::new(bits)))
  }
}

pub(super) unsafe extern "C" fn on_poll(_h: *mut c_void, status: c_int, _events: c_int) {
  // libuv stops a `uv_poll_t` whose event carries EPOLLERR; in direct mode that event is a
  // socket's (it is handled below, like any other). The handle starts again on the way out.
  let _restart = (status < 0).then(|| Restart);
  let env = env();
  let Some(_scopes) = enter_js(env) else { return };
  // Declared after the scopes, so dropped (and its sweep run) while they are open.
  let _sweep = crate::registry::WakeSweep::enter(env);
  let Some((direct, lp)) = with(|r| (r.poller.is_direct(), r.lp)) else {
    return;
  };
  // Re-polling pays when handlers make more work ready at once (peers in this process); when the
  // last re-polls all came back empty (peers elsewhere) they are skipped, except on every 16th
  // wake-up, which notices when that changes.
  let (misses, wakes) = SPIN.with(Cell::get);
  let wakes = wakes.wrapping_add(1);
  let repoll = misses < SPIN_MISSES_TO_SKIP || wakes % 16 == 0;
  let started = Instant::now();
  let wake =
    Wake { direct, lp, repoll, misses, handled: 0, rounds: 0, last: None, started, waited: Duration::ZERO, now: started, round: Round::Dispatch, over: false };
  // A nested event loop (run by a handler) has a wake-up and a queue of its own.
  let outer = (WAKE.with(|w| w.replace(Some(wake))), crate::batch::suspend());
  // Each round's events are handled, or queued for `batch`, whose JS loop, once through them,
  // runs the next rounds itself (`advance` from its `step()`): the events of later rounds then
  // reach JS as the return value of a call from JS, not through a call into JS each.
  while advance(env) {
    crate::batch::flush(env);
  }
  crate::batch::flush(env);
  let wake = WAKE.with(|w| w.replace(outer.0));
  crate::batch::resume(outer.1);
  let Some(wake) = wake else { return };
  SPIN.with(|c| c.set((wake.misses, wakes)));
  if !wake.waited.is_zero() {
    // Counted once per wake-up (libuv's metrics take a mutex); JS that reads the loop's
    // utilization from a handler meanwhile sees the wake-up's waits as busy, as it would see
    // the handler's own time.
    let _ = with(|r| r.poller.add_idle_time(wake.waited));
  }
}

/// One wake-up between its rounds (see [`advance`]).
struct Wake {
  direct: bool,
  lp: *mut c_void,
  /// Whether rounds that found events are followed by a zero-timeout re-poll (see `on_poll`).
  repoll: bool,
  /// Consecutive re-polls that found nothing, as of this wake-up.
  misses: u32,
  /// Events handled or queued, all rounds.
  handled: usize,
  rounds: u32,
  /// The last round's event count and whether other handles' fds were ready too.
  last: Option<(usize, bool)>,
  started: Instant,
  /// Time spent waiting in libuv's set (direct mode).
  waited: Duration,
  /// The clock as of the end of the last round (a wait starts right after it).
  now: Instant,
  /// The next round.
  round: Round,
  over: bool,
}

impl Wake {
  /// Whether the wake-up goes on after its last round (whose events have all been delivered by
  /// now, so timers their handlers started count), and with which round.
  fn next_round(&mut self) -> bool {
    let Some((n, foreign)) = self.last else { return true };
    self.now = Instant::now();
    if foreign
      || self.rounds >= SPIN_ROUNDS
      || self.handled >= SPIN_EVENT_BUDGET
      || self.now.saturating_duration_since(self.started).saturating_sub(self.waited) >= SPIN_TIME_BUDGET
    {
      return false;
    }
    self.round = if self.direct {
      // Direct mode: re-poll while that finds events (a peer in this process answers at once),
      // then wait in libuv's set; a wait that timed out ends the wake-up, and so does anything
      // libuv has due. When the last re-polls found nothing (peers in other processes), the
      // wait comes at once (it returns at once too when events are there), which saves one
      // `epoll_wait` per wake-up.
      if n == 0 && matches!(self.round, Round::Wait(_)) {
        return false;
      }
      if n > 0 && self.repoll {
        Round::Now
      } else {
        match uv::backend_timeout(self.lp) {
          0 => return false,
          t if t < 0 => Round::Wait(OWN_WAIT_CAP_MS),
          t => Round::Wait(t.min(OWN_WAIT_CAP_MS)),
        }
      }
    } else {
      if n == 0 || !self.repoll {
        return false;
      }
      Round::Now
    };
    true
  }
}

thread_local! {
  /// The wake-up under way, if any.
  static WAKE: Cell<Option<Wake>> = const { Cell::new(None) };
}

/// Runs the next round of the wake-up under way, once what the last one queued has been
/// delivered: its events are handled at once, or queued for `batch` (all of them, in order, when
/// `batch`'s loop will take them: any is a read for `data`, or the loop is running). `false` when
/// the wake-up is over (or none is under way).
pub(crate) fn advance(env: Env) -> bool {
  // Taken out while its round runs: a handler that runs a nested event loop (whose `on_poll`
  // keeps its own wake-up) finds none.
  let Some(mut w) = WAKE.with(Cell::take) else { return false };
  let more = !w.over && w.next_round() && w.run_round(env);
  w.over = !more;
  WAKE.with(|c| c.set(Some(w)));
  more
}

impl Wake {
  fn run_round(&mut self, env: Env) -> bool {
    let Some(mut raw) = with(|r| r.raw.take()).flatten() else {
      return false;
    };
    let foreign = with(|r| r.gather(self.round, &mut raw)).unwrap_or(false);
    if matches!(self.round, Round::Wait(_)) {
      self.waited += self.now.elapsed();
    }
    let n = handle_round(env, &raw);
    let _ = with(|r| r.raw = Some(raw));
    self.handled += n;
    self.rounds += 1;
    if matches!(self.round, Round::Now) {
      self.misses = if n == 0 { self.misses.saturating_add(1) } else { 0 };
    }
    self.last = Some((n, foreign));
    true
  }
}

/// One round of a wake-up (see [`Reactor::gather`]).
#[derive(Clone, Copy)]
pub(crate) enum Round {
  /// The events libuv's dispatch (direct) or the nested set (nested) holds.
  Dispatch,
  /// A zero-timeout re-poll.
  Now,
  /// A wait in libuv's own epoll set, up to this many ms (direct mode).
  Wait(c_int),
}

/// Hands one round's events to their sockets, listeners and flushes, or queues them all for
/// `batch` (see [`advance`]); the number handled or queued.
fn handle_round(env: Env, raw: &[Raw]) -> usize {
  let resolved = || raw.iter().filter_map(|ev| with(|r| r.resolve(*ev)).flatten());
  let queue =
    crate::batch::running() || (resolved().any(|(e, ready)| matches!(&e, Entry::Conn(c) if crate::conn::plain_read(c, &ready))) && crate::batch::usable(env));
  if queue {
    // All queued in one pass, with the reactor and the queue borrowed once (no JS runs here).
    return with(|r| crate::batch::extend(raw.iter().filter_map(|ev| r.resolve(*ev)))).unwrap_or(0);
  }
  let mut n = 0usize;
  // The handles of the first 16 events live in `enter_js`'s scope; each further 16 get a scope
  // of their own (a scope costs a malloc and a free: one wake-up with one event, the common case
  // with peers in other processes, opens no second one).
  let mut hs: Option<HandleScope> = None;
  for (entry, ready) in resolved() {
    if n > 0 && n % 16 == 0 {
      drop(hs.take());
      hs = Some(HandleScope::open(env));
    }
    dispatch(env, entry, &ready);
    n += 1;
  }
  n
}

/// Hands one event to its socket, listener or flush.
pub(crate) fn dispatch(env: Env, entry: Entry, ready: &poller::Ready) {
  match entry {
    Entry::Conn(c) => crate::conn::on_event(env, &c, ready),
    Entry::Listener(l) => crate::listener::on_readable(env, &l),
    Entry::Linger(l) => l.flush(),
  }
}

/// Starts the reactor's `uv_poll_t` again when dropped (see `on_poll`).
struct Restart;

impl Drop for Restart {
  fn drop(&mut self) {
    crate::debug::debug!("poller: poll handle restarted after an error event");
    let _ = with(|r| {
      if let Some(h) = &r.uv_poll {
        h.restart_poll(on_poll);
      }
    });
  }
}

thread_local! {
  /// (consecutive re-polls that found nothing, wake-ups): see `on_poll`.
  static SPIN: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}
