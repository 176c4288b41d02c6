// Shared helpers for the workload scripts. Every workload runs as its own child process:
//   <bun|node> bench/workloads/<name>.mjs --impl bun|node|bunnet [--quick] [workload options]
// and prints exactly one JSON line on stdout: { value, unit, ...extra }.
// The "bun" and "bunnet" implementations share one code path (the Bun socket API);
// "node" uses node:net.

import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const HOST = '127.0.0.1'
export const isBun = typeof globalThis.Bun !== 'undefined'

/** Parses `--key value` / `--flag` arguments after the script name. */
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue
    const key = argv[i].slice(2)
    const next = argv[i + 1]
    if (next === undefined || next.startsWith('--')) out[key] = true
    else out[key] = argv[++i]
  }
  return out
}

export const args = parseArgs()
export const impl = args.impl
export const quick = args.quick === true

/** `{ connect, listen }` with Bun's API for impl bun/bunnet; null for node (use node:net). */
export async function bunApi() {
  if (!['bun', 'node', 'bunnet'].includes(impl)) throw new Error(`--impl must be bun, node or bunnet (got ${impl})`)
  if (impl === 'bun' && !isBun) throw new Error('--impl bun must run under the bun binary')
  if (impl !== 'bun' && isBun) throw new Error(`--impl ${impl} must run under node`)
  if (impl === 'bun') return { connect: (o) => Bun.connect(o), listen: (o) => Bun.listen(o) }
  if (impl === 'bunnet') {
    const m = await import(new URL('../index.mjs', import.meta.url))
    return { connect: m.connect, listen: m.listen }
  }
  return null
}

/**
 * The test PKI in __test__/fixtures/tls as Buffers: `ca` (the root), `cert`/`key` (server
 * certificate valid for localhost and 127.0.0.1, signed by `ca`).
 */
export function tlsFixtures() {
  const read = (f) => readFileSync(new URL(`../__test__/fixtures/tls/${f}`, import.meta.url))
  return { ca: read('ca.pem'), cert: read('server.pem'), key: read('server-key.pem') }
}

export const now = () => performance.now()
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Rate of `counter()` per second over `durationMs`, after `warmupMs` of warm-up.
 * `check()` (optional) is polled every 50 ms and may throw to abort (e.g. a recorded error).
 */
export async function measureRate(counter, warmupMs, durationMs, check = () => {}) {
  await pollingSleep(warmupMs, check)
  const c0 = counter()
  const t0 = now()
  await pollingSleep(durationMs, check)
  const c1 = counter()
  const t1 = now()
  return { rate: (c1 - c0) / ((t1 - t0) / 1000), count: c1 - c0, seconds: (t1 - t0) / 1000 }
}

async function pollingSleep(ms, check) {
  const end = now() + ms
  while (now() < end) {
    check()
    await sleep(Math.min(50, Math.max(0, end - now())))
  }
  check()
}

/** Full garbage collection (needs `node --expose-gc`). */
export async function gc() {
  for (let i = 0; i < 3; i++) {
    if (isBun) Bun.gc(true)
    else if (typeof globalThis.gc === 'function') globalThis.gc()
    else throw new Error('gc unavailable: run node with --expose-gc')
    await sleep(50)
  }
}

/**
 * Resident memory split as Linux reports it (/proc/self/status, bytes): `anon` (heap, stacks,
 * malloc and the JS heap: what connections cost) and `file` (pages of the runtime's binary and
 * libraries, paged in the first time a code path runs); plus the JS heap's own figures.
 */
export function rssParts() {
  const status = readFileSync('/proc/self/status', 'utf8')
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  const m = process.memoryUsage()
  return { total: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), heapTotal: m.heapTotal, heapUsed: m.heapUsed }
}

/** Prints the result line and exits (no graceful teardown: the process is thrown away). */
export function emit(result) {
  process.stdout.write(JSON.stringify({ impl, ...result }) + '\n', () => process.exit(0))
}

/** Prints the error to stderr and exits 1; the runner records the stderr tail. */
export function fail(err) {
  process.stderr.write(`FAILED: ${err?.stack ?? err}\n`, () => process.exit(1))
}

/** Runs `main` and turns any throw/rejection (including unhandled ones) into `fail`. */
export function run(main) {
  process.on('uncaughtException', fail)
  process.on('unhandledRejection', fail)
  main().then(emit, fail)
}

/**
 * Bun-API write that never loses bytes: Bun's write() is unbuffered and may take fewer bytes
 * than asked, so the rest is kept in `s.data.pending` and resent from the `drain` handler
 * (call `flushPending(s)` there).
 */
export function writeAll(s, buf) {
  const st = (s.data ??= {})
  if (st.pending) {
    st.pending = Buffer.concat([st.pending, buf])
    return
  }
  const n = s.write(buf)
  if (n >= 0 && n < buf.length) st.pending = Buffer.from(buf.subarray(n))
}

export function flushPending(s) {
  const p = s.data?.pending
  if (!p) return
  s.data.pending = null
  writeAll(s, p)
}

/**
 * Runs `count` loops of `once()` (a promise per iteration, e.g. one connection) while `go()`
 * holds; each success calls `done()` and starts the next, a rejection calls `fail(e)` and ends
 * that loop.
 */
export function startLoops(count, once, go, done, fail) {
  const loop = () => {
    if (!go()) return
    once().then(() => {
      done()
      loop()
    }, fail)
  }
  for (let i = 0; i < count; i++) loop()
}

/**
 * Bulk sender for the Bun API: `pump(s)` writes slices of `chunk` until `total` bytes were
 * taken or a write is short (call it again from `drain`); `sent()` is what write() took.
 */
export function bunBulkSender(chunk, total, onError) {
  let sent = 0
  return {
    sent: () => sent,
    pump(s) {
      while (sent < total) {
        const off = sent % chunk.length
        const len = Math.min(chunk.length - off, total - sent)
        const n = s.write(chunk, off, len)
        if (n < 0) return onError(new Error(`write returned ${n} with ${sent} of ${total} bytes sent`))
        sent += n
        if (n < len) return // short write: the rest goes out from `drain`
      }
    },
  }
}

/** Bulk sender for node:net/node:tls: `pump()` writes `chunk`s until `total`, resuming on 'drain'. */
export function nodeBulkSender(stream, chunk, total) {
  let sent = 0 // bytes handed to write()
  const pump = () => {
    while (sent < total) {
      const len = Math.min(chunk.length, total - sent)
      sent += len
      if (!stream.write(len === chunk.length ? chunk : chunk.subarray(0, len))) return stream.once('drain', pump)
    }
  }
  return pump
}

/** Line-by-line reader over a readable stream: `await next()` gives the next line. */
export function lineReader(stream, what = 'stream') {
  let buf = ''
  let ended = false
  const queue = []
  const waiters = []
  stream.setEncoding('utf8')
  stream.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (waiters.length) waiters.shift().resolve(line)
      else queue.push(line)
    }
  })
  stream.on('end', () => {
    ended = true
    while (waiters.length) waiters.shift().reject(new Error(`${what} ended`))
  })
  return () => {
    if (queue.length) return Promise.resolve(queue.shift())
    if (ended) return Promise.reject(new Error(`${what} ended`))
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }))
  }
}

/** Resolves once `cond()` holds (polled every 10 ms); rejects after `ms`. */
export async function until(cond, ms, what) {
  const end = now() + ms
  while (!cond()) {
    if (now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

// ---- peer processes ---------------------------------------------------------------------
// Some workloads run part of themselves (a server, a sender) in a second process: the same
// script, started again with the same runtime, `--impl` and `--quick`, plus `--role <peer role>`.
// The peer talks to the measuring process over its stdin/stdout, one line per message (the first
// line is typically the port it listens on), and exits when its stdin closes.

let peerExitExpected = false

/** `BUNNET_BENCH_PEER` as `[runtime path, impl]`, or null when unset (see `spawnPeer`). */
export function peerOverride() {
  const v = process.env.BUNNET_BENCH_PEER
  if (!v) return null
  const parts = v.split('|')
  if (parts.length !== 2 || !parts[0] || !['bun', 'bunnet', 'node'].includes(parts[1])) {
    throw new Error(`BUNNET_BENCH_PEER must be "<runtime path>|bun|bunnet|node", got ${JSON.stringify(v)}`)
  }
  return parts
}

/**
 * For experiments with mixed pairs, `BUNNET_BENCH_PEER="<runtime path>|<impl>"` in the environment
 * starts the peer with another runtime and implementation (e.g. a Bun server for a bunnet client).
 * The benchmark runner never sets it (and refuses to run with it set).
 *
 * Spawns `script` (a file URL or path, normally `import.meta.url`) as a peer with role
 * `peerRole`; returns `{ child, next, send, kill }`: `await next()` reads the peer's next stdout
 * line, `send(line)` writes one to its stdin, `kill()` ends it. If the peer exits with an error
 * (its stderr goes to ours), this process exits 1 too.
 */
export function spawnPeer(script, peerRole, extra = []) {
  const path = String(script).startsWith('file:') ? fileURLToPath(script) : String(script)
  const [peerExec, peerImpl] = peerOverride() ?? [process.execPath, impl]
  const child = spawn(peerExec, [path, '--impl', peerImpl, '--role', peerRole, ...(quick ? ['--quick'] : []), ...extra], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  child.on('exit', (code, sig) => {
    if (code !== 0 && !peerExitExpected) {
      process.stderr.write(`peer (${peerRole}) exited with ${code ?? sig}\n`)
      process.exit(1)
    }
  })
  return {
    child,
    next: lineReader(child.stdout, `peer ${peerRole} stdout`),
    send: (l) => child.stdin.write(l + '\n'),
    kill() {
      peerExitExpected = true
      child.kill()
    },
  }
}

/** Peer side: prints the error to stderr and exits 1 (the measuring process then fails too). */
export function peerFail(err) {
  process.stderr.write(`peer ${args.role} (${impl}) failed: ${err?.stack ?? err}\n`, () => process.exit(1))
}

/**
 * Peer side: runs `body(next)` (`await next()` reads the next stdin line) and stays up until
 * stdin closes (the measuring process is gone), then exits 0. `check()` (optional) is polled
 * every 50 ms and may throw to fail the peer (e.g. a recorded socket error).
 */
export function runPeer(body, check) {
  process.on('uncaughtException', peerFail)
  process.on('unhandledRejection', peerFail)
  const next = lineReader(process.stdin, 'stdin')
  process.stdin.on('end', () => process.exit(0))
  if (check) {
    setInterval(() => {
      try {
        check()
      } catch (e) {
        peerFail(e)
      }
    }, 50)
  }
  body(next).catch(peerFail)
}

/**
 * `--role server` side of the `--split` workloads: starts the server with `startServer()` (which
 * resolves to its port), prints the port, then answers each stdin line `cmd` with
 * `await commands[cmd]()` on one stdout line. `check` as in `runPeer`.
 */
export function runServerPeer(startServer, { commands = {}, check } = {}) {
  runPeer(async (next) => {
    console.log(await startServer())
    for (;;) {
      const cmd = await next()
      if (!commands[cmd]) throw new Error(`unknown command ${JSON.stringify(cmd)}`)
      console.log(String(await commands[cmd]()))
    }
  }, check)
}

/**
 * Measuring side of the workloads with a `--split` mode: without `--split` (or `split` false),
 * starts the server here (`startServer()` resolves to its port); with it, starts `script` as a
 * `--role server` peer and reads its port. Resolves to `{ port, peer }` (`peer` null when
 * in-process).
 */
export async function serverPort(script, startServer, split = args.split === true, extra = []) {
  if (!split) return { port: await startServer(), peer: null }
  const peer = spawnPeer(script, 'server', extra)
  const port = Number(await peer.next())
  if (!(port > 0)) throw new Error(`peer server printed no port`)
  return { port, peer }
}
