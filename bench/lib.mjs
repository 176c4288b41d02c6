// Shared helpers for the workload scripts. Every workload runs as its own child process:
//   <bun|node> bench/workloads/<name>.mjs --impl bun|node|bunnet [--quick] [workload options]
// and prints exactly one JSON line on stdout: { value, unit, ...extra }.
// The "bun" and "bunnet" implementations share one code path (the Bun socket API);
// "node" uses node:net.

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

export const rss = () => process.memoryUsage().rss

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
