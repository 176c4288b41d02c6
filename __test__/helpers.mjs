// Shared test helpers: listeners on port 0, promise-shaped waits, temp unix paths, and the
// registration that runs every socket scenario on the main thread (ava) and again inside a
// worker_thread (worker.spec.mjs).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { connect, listen } from '../index.mjs'

export { connect, listen }

/** Resolves after `ms` milliseconds. */
export const delay = (ms) => new Promise((r) => setTimeout(r, ms))

/** A promise plus its resolve function. */
export function deferred() {
  let resolve, reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Waits until `cond()` is true (polling), failing after `ms`. */
export async function until(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await delay(5)
  }
}

/** A fresh temp dir for unix socket paths, removed at teardown. */
export function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bunnet-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** listen() on 127.0.0.1:0 with `socket` handlers; stopped (with its sockets) at teardown. */
export function server(t, socket, extra = {}) {
  const l = listen({ hostname: '127.0.0.1', port: 0, socket, ...extra })
  t.teardown(() => l.stop(true))
  return l
}

/** An echo listener. */
export function echoServer(t, extra = {}) {
  return server(t, { data(s, d) { s.write(d) } }, extra)
}

/** Collects handler calls as strings, in order. */
export function recorder() {
  const log = []
  const rec = (name, fn) =>
    function (...args) {
      log.push(name)
      return fn?.apply(this, args)
    }
  return { log, rec }
}

/** `n` bytes (a multiple of 4) of a fixed, non-repeating pattern, for byte-exact comparisons. */
export function patterned(n) {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i)
  return b
}

/**
 * Sends `src` through a Bun-API socket: `pump(s)` writes on from where it stopped, at most `step`
 * bytes per write, until a write takes nothing (call it again from `drain`); `sent()` is what
 * the writes took.
 */
export function sender(src, step = src.length) {
  let off = 0
  return {
    sent: () => off,
    pump(s) {
      while (off < src.length) {
        const n = s.write(src, off, Math.min(step, src.length - off))
        if (n <= 0) return
        off += n
      }
    },
  }
}

/**
 * During a burst (the sender ahead of the reader) reads go into 120 KiB buffers (readbuf.rs): a
 * chunk of exactly this length is such a read, full, with more waiting in the kernel, so its
 * handler acts in the middle of the stream.
 */
export const BURST_READ = 120 * 1024

/** Streams `src` from a new client to `port`, honouring backpressure; the client is terminated at teardown. */
export async function streamTo(t, port, src) {
  const out = sender(src, 64 * 1024)
  const c = await connect({ hostname: '127.0.0.1', port, socket: { drain: (s) => out.pump(s), data() {}, error() {} } })
  t.teardown(() => c.terminate())
  out.pump(c)
}

/**
 * Registers every exported scenario of `mod` as an ava test. Scenarios take ava's `t` (or the
 * worker shim, which offers the same subset: is, not, true, false, truthy, falsy, deepEqual, like,
 * regex, throws, pass, fail, plan, teardown, log).
 */
export function register(test, mod) {
  for (const [name, fn] of Object.entries(mod)) {
    if (typeof fn === 'function') test(name, fn)
  }
}
