// Shared helpers for the stress areas. Every area is a standalone script:
//   node stress/<area>.mjs [--quick] [--seed N]
// (re-executed under --expose-gc with the soft fd limit raised, as run.mjs starts it)
// It prints machine-readable lines that stress/run.mjs parses (and that stay readable by hand):
//   @check {"name":..., "ok":true|false, "detail":...}   one per individual check, as soon as known
//   @figure {"name":..., "value":..., "unit":...}        key figures for RESULTS.md
//   @table {"title":..., "rows":[[...],...]}              optional tables (e.g. fuzz outcome counts)
//   # free text                                           progress notes
// and exits 1 if any check failed (0 otherwise). A crash, abort or hang is detected by run.mjs.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { constants as osConstants } from 'node:os'
import { isMainThread } from 'node:worker_threads'
import { spawnSync } from 'node:child_process'

export { connect, listen } from '../index.mjs'

export const argv = process.argv.slice(2)
export const quick = argv.includes('--quick')
export function argValue(name, dflt) {
  const i = argv.indexOf(name)
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt
}

// Run by hand as `node stress/<area>.mjs`: re-run under --expose-gc with the soft fd limit
// raised to the hard limit (what run.mjs does), forwarding the exit code or signal.
if (isMainThread && typeof globalThis.gc !== 'function' && !argv.includes('--role')) {
  const r = spawnSync('bash', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'bash', process.execPath, '--expose-gc', ...process.execArgv, process.argv[1], ...argv], { stdio: 'inherit' })
  if (r.signal) process.kill(process.pid, r.signal)
  process.exit(r.status ?? 1)
}

// Touch process.stdout now: Node opens an extra fd (/dev/null) the first time stdout (a pipe) is
// used, which would otherwise show up as a "leak" in fd counts taken around the first note().
if (isMainThread) process.stdout.write(`# ${process.argv[1]?.split('/').pop()} pid ${process.pid}${argv.length ? ' ' + argv.join(' ') : ''}\n`)

let failures = 0
let checks = 0
const out = (line) => process.stdout.write(line + '\n')

/** Records one check. `detail` is free text (or anything JSON-able). Returns `ok`. */
export function check(name, ok, detail = '') {
  checks++
  if (!ok) failures++
  out('@check ' + JSON.stringify({ name, ok: !!ok, detail: typeof detail === 'string' ? detail : JSON.stringify(detail) }))
  return !!ok
}
export function figure(name, value, unit = '') {
  out('@figure ' + JSON.stringify({ name, value, unit }))
}
export function table(title, header, rows) {
  out('@table ' + JSON.stringify({ title, header, rows }))
}
export function note(text) {
  out('# ' + text)
}

/** Ends the area: exit code 1 if any check failed. */
export function finish() {
  note(`${checks - failures} checks passed, ${failures} failed`)
  process.stdout.write('', () => process.exit(failures ? 1 : 0))
}

/** Runs `main`; an exception escaping it is a failed check (not a crash). */
export function runArea(main) {
  main().then(finish, (err) => {
    check('area ran to completion', false, String(err?.stack ?? err))
    finish()
  })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
export const now = () => performance.now()

export async function until(cond, ms, what = 'condition') {
  const end = now() + ms
  while (!cond()) {
    if (now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(5)
  }
}
/** Like until() but returns false instead of throwing. */
export async function waitFor(cond, ms) {
  const end = now() + ms
  while (!cond()) {
    if (now() > end) return false
    await sleep(5)
  }
  return true
}

export function withTimeout(promise, ms, what) {
  let t
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)
    }),
  ])
}

export async function fullGc() {
  if (typeof globalThis.gc !== 'function') throw new Error('run node with --expose-gc')
  for (let i = 0; i < 3; i++) {
    globalThis.gc()
    await sleep(20)
  }
}

export const rss = () => process.memoryUsage().rss
/** Peak RSS of this process so far, bytes. */
export const peakRss = () => process.resourceUsage().maxRSS * 1024
export const fdCount = () => readdirSync('/proc/self/fd').length - 1 // minus the fd readdir itself holds
export const fdList = () => readdirSync('/proc/self/fd')

export const MiB = 1024 * 1024
export const fmtBytes = (n) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`)

export const sha256 = () => createHash('sha256')

/** mulberry32: small seeded PRNG. */
export function prng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
  }
}

export function seedFromArgs() {
  const s = argValue('--seed')
  return s !== undefined ? Number(s) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0
}

/**
 * Checks a system error is Node-shaped: an Error with string `code`, numeric `errno` equal to
 * -os.constants.errno[code] (Node's negative convention), string `syscall`. Returns '' or a reason.
 */
export function nodeErrorProblem(err, { codes, syscalls } = {}) {
  if (!(err instanceof Error)) return `not an Error: ${describe(err)}`
  if (typeof err.code !== 'string') return `code is ${describe(err.code)}`
  if (codes && !codes.includes(err.code)) return `code ${err.code} not in ${codes.join('/')}`
  const expected = osConstants.errno[err.code]
  if (expected === undefined) return `unknown code ${err.code}`
  if (err.errno !== -expected) return `errno ${describe(err.errno)} for ${err.code} (expected ${-expected})`
  if (typeof err.syscall !== 'string') return `syscall is ${describe(err.syscall)}`
  if (syscalls && !syscalls.includes(err.syscall)) return `syscall ${err.syscall} not in ${syscalls.join('/')}`
  return ''
}

export function describe(v) {
  try {
    if (v instanceof Error) return `${v.name}${v.code ? ' ' + v.code : ''}: ${v.message}`
    if (typeof v === 'symbol' || typeof v === 'bigint') return String(v) + (typeof v === 'bigint' ? 'n' : '')
    if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v)
    if (v === null || typeof v !== 'object') return String(v)
    return Object.prototype.toString.call(v)
  } catch {
    return '<undescribable>'
  }
}

/**
 * Writes everything in `buf` through Bun's unbuffered write(): what the kernel does not take is
 * kept and resent on `drain` (call `st.onDrain()` from the drain handler). Resolves when all is taken.
 */
export function writer(socket) {
  const queue = []
  let waiting = false
  const st = {
    taken: 0,
    write(buf) {
      queue.push(buf)
      if (!waiting) st.pump()
    },
    pump() {
      while (queue.length) {
        const b = queue[0]
        const n = socket.write(b)
        if (n < 0) throw new Error('write returned -1 (socket closed)')
        st.taken += n
        if (n < b.length) {
          queue[0] = b.subarray(n)
          waiting = true
          return false
        }
        queue.shift()
      }
      waiting = false
      return true
    },
    onDrain() {
      waiting = false
      st.pump()
    },
    get idle() {
      return queue.length === 0
    },
  }
  return st
}

/** What each open fd is (for diagnosing fd-count differences): fd -> description. */
export function fdDescribe() {
  const out = {}
  const tables = {}
  const load = (name) => {
    if (tables[name] === undefined) {
      try {
        tables[name] = readFileSync(`/proc/self/net/${name}`, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
      } catch {
        tables[name] = []
      }
    }
    return tables[name]
  }
  const states = { '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING' }
  for (const f of fdList()) {
    let t
    try {
      t = readlinkSync(`/proc/self/fd/${f}`)
    } catch {
      continue
    }
    const m = /^socket:\[(\d+)\]$/.exec(t)
    if (m) {
      const ino = m[1]
      let desc = 'socket (unknown family)'
      for (const name of ['tcp', 'tcp6']) {
        const row = load(name).find((r) => r[9] === ino)
        if (row) desc = `${name} ${row[1]} -> ${row[2]} ${states[row[3]] ?? row[3]}`
      }
      const urow = load('unix').find((r) => r[6] === ino)
      if (urow) desc = `unix ${urow[7] ?? '(unnamed)'}`
      out[f] = desc
    } else out[f] = t
  }
  return out
}

/** The entries of fdDescribe() `after` that were not in `before` (or changed). */
export function fdDiff(before, after) {
  const d = []
  for (const [f, v] of Object.entries(after)) if (before[f] !== v) d.push(`${f}: ${v}`)
  for (const [f, v] of Object.entries(before)) if (!(f in after)) d.push(`${f} closed (was ${v})`)
  return d.join('; ')
}

/**
 * For helper child processes: exit when the process that spawned us is gone (an area that
 * crashed or was killed must not leave helpers behind). Unref'd: it never keeps us alive.
 */
export function exitWithParent() {
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1)
  }, 500).unref()
}

/** The same, as source text for `node -e` helpers. */
export const EXIT_WITH_PARENT_JS = 'setInterval(() => { if (process.ppid !== ' + process.pid + ') process.exit(1) }, 500).unref();'
