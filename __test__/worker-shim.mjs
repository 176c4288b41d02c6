// Runs one scenario inside a worker_thread with an assertion object shaped like ava's `t`, then
// reports { ok, error } to the parent. Sockets the scenario leaves open are cleaned up by its
// teardowns; the parent then terminates the worker, which must be clean too.
import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
import { parentPort, workerData } from 'node:worker_threads'

function matches(err, exp) {
  if (!exp) return
  if (exp.instanceOf) assert.ok(err instanceof exp.instanceOf, `expected ${exp.instanceOf.name}, got ${err?.constructor?.name}`)
  if (exp.code !== undefined) assert.equal(err.code, exp.code)
  if (exp.name !== undefined) assert.equal(err.name, exp.name)
  if (typeof exp.message === 'string') assert.equal(err.message, exp.message)
  if (exp.message instanceof RegExp) assert.match(err.message, exp.message)
}

function like(actual, expected) {
  for (const [k, v] of Object.entries(expected)) {
    if (v && typeof v === 'object' && !(v instanceof RegExp)) like(actual[k], v)
    else assert.deepStrictEqual(actual[k], v, `property ${k}`)
  }
}

const teardowns = []
const t = {
  is: (a, b, m) => assert.ok(Object.is(a, b), m ?? `${String(a)} !== ${String(b)}`),
  not: (a, b, m) => assert.ok(!Object.is(a, b), m),
  true: (v, m) => assert.equal(v, true, m),
  false: (v, m) => assert.equal(v, false, m),
  truthy: (v, m) => assert.ok(v, m),
  falsy: (v, m) => assert.ok(!v, m),
  deepEqual: (a, b, m) => assert.ok(isDeepStrictEqual(a, b), m ?? `${JSON.stringify(a)} != ${JSON.stringify(b)}`),
  notDeepEqual: (a, b, m) => assert.ok(!isDeepStrictEqual(a, b), m ?? `${JSON.stringify(a)} deep-equals it`),
  like: (a, b) => like(a, b),
  regex: (s, re, m) => assert.match(s, re, m),
  throws(fn, exp) {
    let err
    try {
      fn()
    } catch (e) {
      err = e
    }
    assert.ok(err, 'expected a throw')
    matches(err, exp)
    return err
  },
  async throwsAsync(p, exp) {
    let err
    try {
      await (typeof p === 'function' ? p() : p)
    } catch (e) {
      err = e
    }
    assert.ok(err, 'expected a rejection')
    matches(err, exp)
    return err
  },
  pass() {},
  fail: (m) => assert.fail(m),
  plan() {},
  log() {},
  teardown: (fn) => teardowns.push(fn),
}

const { file, name } = workerData
try {
  const mod = await import(file)
  await mod[name](t)
  for (const fn of teardowns.reverse()) await fn()
  parentPort.postMessage({ ok: true })
} catch (e) {
  for (const fn of teardowns.reverse()) {
    try {
      await fn()
    } catch {}
  }
  parentPort.postMessage({ ok: false, error: `${e?.stack ?? e}` })
}
