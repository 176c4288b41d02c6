// Area 3 — bad input fuzzing: 50,000 random calls (quick: 10,000) of connect(), listen(), the
// socket methods write/end/timeout/reload/setKeepAlive/setNoDelay/shutdown/pause/resume/ref/unref
// (on live and on closed sockets) and the listener methods reload/stop/getsockname/ref/unref,
// with random option objects, handler shapes and arguments: wrong types, huge/negative numbers,
// NaN, bigints, symbols, detached ArrayBuffers (structuredClone(ab, { transfer: [ab] })), views on
// them, resizable buffers, SharedArrayBuffer, Blob, frozen objects, getters that throw, Proxies
// whose traps throw, valueOf() that detaches the buffer being written.
// Checks: every synchronous throw is an Error instance; every return value is one the docs
// allow; every connect() promise settles (within 30 s: names go to the system resolver, whose
// timeout is 5 s per try) with a Socket or an Error; every error
// that reaches uncaughtException/unhandledRejection is an Error (they come from the fuzzed
// handlers, which may throw); no single call blocks (> 2 s); afterwards the process still echoes
// and its fd count is back to its start. Seeded PRNG: the seed is printed (--seed N replays the
// same inputs; timing-dependent events may differ). A second phase makes handlers call random
// methods re-entrantly (see "phase 2" below).
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  check, figure, table, note, runArea, quick, argValue, connect, listen, fdCount, fullGc,
  sleep, now, waitFor, prng, seedFromArgs, describe, nodeErrorProblem,
} from './lib.mjs'

const CASES = Number(argValue('--cases', quick ? 10000 : 50000))
const SETTLE_MS = 30000 // a DNS query the resolver drops costs 5 s per try

class ProbeError extends Error {
  constructor(where) {
    super(`probe: ${where}`)
    this.name = 'ProbeError'
    this.probe = true
  }
}
const probe = (where) => new ProbeError(where)

const outcomes = new Map() // "op | outcome" -> count
function count(op, outcome) {
  const k = `${op}\u0000${outcome}`
  outcomes.set(k, (outcomes.get(k) ?? 0) + 1)
}
const problems = []
function problem(text) {
  if (problems.length < 50) problems.push(text)
  else problems.length++
}

function classify(err) {
  if (!(err instanceof Error)) return null
  if (err.probe) return 'ProbeError (propagated from a getter/trap/valueOf/handler)'
  if (err.code) return `${err.constructor?.name ?? err.name} ${err.code}`
  // no code: a plain Error (Bun's reload/timeout messages) or a JS engine conversion error
  return `${err.constructor?.name ?? err.name} "${String(err.message).slice(0, 70)}"`
}

/** For errors carrying errno: Node's shape ('' if fine). ENOTFOUND is UV_EAI_NONAME (-3008). */
function systemErrorProblem(err, syscalls) {
  if (!(err instanceof Error) || err.errno === undefined) return ''
  if (err.code === 'ENOTFOUND') return err.errno === -3008 && err.syscall === 'getaddrinfo' ? '' : `ENOTFOUND errno ${err.errno} syscall ${err.syscall}`
  return nodeErrorProblem(err, { syscalls })
}

async function main() {
  const seed = seedFromArgs()
  note(`seed ${seed} (replay: node --expose-gc stress/fuzz.mjs --seed ${seed}${quick ? ' --quick' : ''})`)
  figure('seed', String(seed))
  const R = prng(seed)
  const dir = mkdtempSync(join(tmpdir(), 'bunnet-fuzz-'))
  const regularFile = join(dir, 'regular-file')
  writeFileSync(regularFile, 'x')
  mkdirSync(join(dir, 'subdir'))

  let uncaught = 0
  let unhandled = 0
  const uncaughtClasses = new Map()
  const onStray = (kind) => (err) => {
    if (kind === 'uncaughtException') uncaught++
    else unhandled++
    const c = classify(err) ?? `NOT AN ERROR: ${describe(err)}`
    const k = `${kind}: ${c}`
    uncaughtClasses.set(k, (uncaughtClasses.get(k) ?? 0) + 1)
    if (!(err instanceof Error)) problem(`${kind} with a non-Error: ${describe(err)}`)
    else if (!err.probe) problem(`${kind} not caused by a fuzzed handler: ${describe(err)}\n${err.stack}`)
  }
  process.on('uncaughtException', onStray('uncaughtException'))
  process.on('unhandledRejection', onStray('unhandledRejection'))

  // A sink: accepts anything, discards data. Its sockets are the "server side" targets.
  const serverSockets = new Set()
  const sinkHandlers = {
    open(s) { serverSockets.add(s) },
    data() {},
    drain() {},
    close(s) { serverSockets.delete(s) },
    error() {},
    timeout() {},
  }
  const sink = listen({ hostname: '127.0.0.1', port: 0, socket: sinkHandlers })
  const sinkUnix = listen({ unix: join(dir, 'sink.sock'), socket: sinkHandlers })
  const PORT = sink.port

  // ---- value pools (factories: fresh objects each time) ------------------------------------
  const detachedAB = () => {
    const ab = new ArrayBuffer(16)
    structuredClone(ab, { transfer: [ab] })
    return ab
  }
  const detachedView = () => {
    const ab = new ArrayBuffer(16)
    const v = new Uint8Array(ab, 4, 8)
    structuredClone(ab, { transfer: [ab] })
    return v
  }
  const throwingGetterObj = () => Object.defineProperty({}, 'x', { get() { throw probe('getter') }, enumerable: true })
  const throwingProxy = () =>
    new Proxy({}, {
      get() { throw probe('proxy get') },
      has() { throw probe('proxy has') },
      ownKeys() { throw probe('proxy ownKeys') },
      getOwnPropertyDescriptor() { throw probe('proxy gOPD') },
      getPrototypeOf() { throw probe('proxy getPrototypeOf') },
      set() { throw probe('proxy set') },
      defineProperty() { throw probe('proxy defineProperty') },
    })
  const throwingPrimitive = () => ({
    valueOf() { throw probe('valueOf') },
    toString() { throw probe('toString') },
    [Symbol.toPrimitive]() { throw probe('toPrimitive') },
  })
  const anything = [
    () => undefined, () => null, () => true, () => false, () => 0, () => -0, () => 1, () => -1, () => 1.5,
    () => NaN, () => Infinity, () => -Infinity, () => 2 ** 31, () => 2 ** 32, () => 2 ** 53, () => 2 ** 64,
    () => -(2 ** 53), () => Number.MAX_VALUE, () => Number.MIN_VALUE, () => 1e10, () => 0n, () => 1n, () => -1n,
    () => 2n ** 64n, () => '', () => 'x', () => '0', () => '1', () => '-1', () => 'NaN', () => '\0', () => '\ud800',
    () => 'é'.repeat(R.int(1, 100)), () => Symbol('fuzz'), () => Symbol.iterator, () => ({}), () => [], () => [1, 2],
    () => function f() {}, () => class C {}, () => new Date(), () => /re/, () => Object.create(null),
    () => Object.freeze({ a: 1 }), () => Object.seal([]), throwingGetterObj, throwingProxy, throwingPrimitive,
    () => new Map(), () => new WeakMap(), () => Promise.resolve(), () => new Error('an error value'),
    () => Buffer.from('buf'), () => new Uint8Array(8), () => new Uint16Array(3), () => new Float64Array(2),
    () => new BigInt64Array(2), () => new DataView(new ArrayBuffer(8), 2, 4), () => new ArrayBuffer(8),
    detachedAB, detachedView, () => new SharedArrayBuffer(8), () => new Uint8Array(new SharedArrayBuffer(16), 4),
    () => new ArrayBuffer(8, { maxByteLength: 64 }), () => new Uint8Array(new ArrayBuffer(8, { maxByteLength: 64 })),
    () => new Blob(['blob']), () => new Proxy(new Uint8Array(4), {}), () => new Proxy({}, {}),
    () => new Proxy(function () {}, { apply() { throw probe('proxy apply') } }),
  ]
  const any = () => R.pick(anything)()

  const numbers = [
    () => undefined, () => 0, () => 1, () => 2, () => 3, () => 7, () => 8, () => -1, () => 1.5, () => NaN,
    () => Infinity, () => -Infinity, () => 2 ** 31, () => 2 ** 32, () => 2 ** 53, () => 2 ** 53 + 2, () => 2 ** 64,
    () => -0, () => '1', () => '0', () => null, () => true, () => 1n, () => Symbol('n'), () => ({ valueOf: () => 1 }),
    throwingPrimitive, throwingProxy, () => R.int(-5, 70000), () => R.next() * 1e6,
  ]
  const num = () => (R.chance(0.15) ? any() : R.pick(numbers)())

  const handlerNames = ['open', 'data', 'drain', 'end', 'close', 'error', 'timeout', 'connectError', 'handshake']
  const handlerValues = [
    () => function benign() {},
    () => function benign2(s) { void s?.readyState },
    () => function thrower() { throw probe('handler throw') },
    () => async function rejecter() { throw probe('handler reject') },
    () => function closer(s) { s?.terminate?.() },
    () => 1, () => 'x', () => null, () => undefined, () => ({}), () => Symbol('h'), () => 1n, throwingProxy,
  ]
  function handlers() {
    const r = R.next()
    if (r < 0.05) return any()
    const h = {}
    for (const name of handlerNames) {
      if (R.chance(name === 'data' ? 0.8 : 0.35)) h[name] = R.chance(0.85) ? R.pick(handlerValues.slice(0, 5))() : R.pick(handlerValues)()
    }
    if (R.chance(0.2)) h.binaryType = R.pick([() => 'buffer', () => 'arraybuffer', () => 'uint8array', () => 'blob', () => 'nodebuffer', () => 1, () => null, () => undefined, any])()
    return shape(h)
  }
  /** Wraps a plain object in a random "shape": as is, frozen, throwing getter, Proxy, inherited, null-proto. */
  function shape(o) {
    const r = R.next()
    if (r < 0.6) return o
    if (r < 0.7) return Object.freeze(o)
    if (r < 0.78) {
      const keys = Object.keys(o)
      const k = keys.length ? R.pick(keys) : 'data'
      return Object.defineProperty(o, k, { get() { throw probe(`getter ${k}`) }, enumerable: true })
    }
    if (r < 0.86) {
      const k = R.pick([...Object.keys(o), 'socket', 'data', 'port'])
      return new Proxy(o, {
        get(t, p, rcv) {
          if (p === k) throw probe(`proxy get ${String(p)}`)
          return Reflect.get(t, p, rcv)
        },
        has(t, p) {
          if (p === k) throw probe(`proxy has ${String(p)}`)
          return Reflect.has(t, p)
        },
      })
    }
    if (r < 0.93) return Object.create(o) // every key inherited
    return Object.assign(Object.create(null), o)
  }

  const hostnames = [
    () => '127.0.0.1', () => '127.0.0.1', () => 'localhost', () => '::1', () => '[::1]', () => '0.0.0.0', () => '::',
    () => '', () => null, () => undefined, () => 1, () => 1n, () => Symbol('h'), () => ({ toString: () => '127.0.0.1' }),
    () => 'a'.repeat(300), () => '\0', () => '127.0.0.1\0x', () => 'nonexistent.invalid', () => '256.256.256.256',
    () => '\ud800', throwingPrimitive, throwingProxy, any,
  ]
  // listen() resolves names synchronously (as Bun does): a name that reaches the DNS server can
  // block for the resolver's timeout (5 s here when a query is dropped), so listen() only gets
  // names that never leave the machine (literals, /etc/hosts, malformed values).
  const listenHostnames = [
    () => '127.0.0.1', () => '127.0.0.1', () => 'localhost', () => '::1', () => '[::1]', () => '0.0.0.0', () => '::',
    () => '', () => null, () => undefined, () => 1, () => 1.5, () => 1n, () => Symbol('h'), () => ({ toString: () => '127.0.0.1' }),
    () => '\0', () => '127.0.0.1\0x', () => '10.255.255.1', () => [], throwingPrimitive, throwingProxy,
  ]
  const ports = [
    () => PORT, () => PORT, () => String(PORT), () => 0, () => 1, () => -1, () => 65535, () => 65536, () => 1.5,
    () => NaN, () => '80x', () => Infinity, () => 2 ** 53, () => -0, () => null, () => undefined, () => true, () => 1n,
    () => Symbol('p'), () => ({ valueOf: () => PORT }), throwingPrimitive, any,
  ]
  let unixSeq = 0
  const connectUnix = [
    () => sinkUnix.unix, () => sinkUnix.unix, () => join(dir, 'missing.sock'), () => regularFile, () => join(dir, 'subdir'),
    () => '', () => 1, () => null, () => '\0bunnet-fuzz-abstract-' + R.int(0, 3), () => join(dir, 'x'.repeat(200)),
    throwingPrimitive, () => Symbol('u'),
  ]
  const listenUnix = [
    () => join(dir, `l${unixSeq++}.sock`), () => join(dir, `l${unixSeq++}.sock`), () => sinkUnix.unix, () => regularFile,
    () => join(dir, 'no-such-dir', 'x.sock'), () => join(dir, 'y'.repeat(200)), () => '\0bunnet-fuzz-l' + R.int(0, 1e9),
    () => '', () => 1, () => null, throwingPrimitive,
  ]
  const tlsValues = [() => undefined, () => false, () => null, () => ({}), () => true, () => 'x', () => 1, () => ({ ca: 1 }),
    () => ({ serverName: 1 }), () => ({ key: 'garbage', cert: 'garbage' }), () => ({ ALPNProtocols: ['h2'] }), () => ({ rejectUnauthorized: 'no' }), throwingProxy]
  const bools = [() => true, () => false, () => undefined, () => 'yes', () => 1, () => null, () => 0n, throwingPrimitive]

  function options(forListen) {
    const r = R.next()
    if (r < 0.04) return any()
    const o = {}
    const useUnix = R.chance(0.25)
    if (useUnix) o.unix = R.pick(forListen ? listenUnix : connectUnix)()
    if (!useUnix || R.chance(0.2)) {
      if (R.chance(0.95)) o.hostname = R.chance(0.6) ? '127.0.0.1' : R.pick(forListen ? listenHostnames : hostnames)()
      if (R.chance(0.95)) o.port = forListen ? (R.chance(0.6) ? 0 : R.pick(ports)()) : R.chance(0.6) ? PORT : R.pick(ports)()
    }
    if (R.chance(0.93)) o.socket = handlers()
    if (R.chance(0.3)) o.data = any()
    if (R.chance(0.15)) o.tls = R.pick(tlsValues)()
    for (const k of ['allowHalfOpen', 'exclusive', 'reusePort', 'ipv6Only']) if (R.chance(0.1)) o[k] = R.pick(bools)()
    return shape(o)
  }

  const writeData = [
    () => 'hello', () => '', () => 'é€😀', () => '\ud800\udfff\ud800', () => 'z'.repeat(R.int(0, 70000)),
    () => Buffer.from('buffer!'), () => new Uint8Array(R.int(0, 4096)), () => new Uint8Array(new ArrayBuffer(32), 8, 16),
    () => new Uint16Array(5), () => new Float64Array(3), () => new BigInt64Array(2), () => new DataView(new ArrayBuffer(16), 3, 9),
    () => new ArrayBuffer(12), detachedAB, detachedView, () => new SharedArrayBuffer(24), () => new Int32Array(new SharedArrayBuffer(32), 4, 2),
    () => new ArrayBuffer(8, { maxByteLength: 64 }), () => {
      const ab = new ArrayBuffer(16, { maxByteLength: 64 })
      const v = new Uint8Array(ab) // length-tracking
      ab.resize(R.int(0, 64))
      return v
    },
    () => new Blob(['blob']), () => Object.freeze(new Uint8Array(0)), () => new Proxy(new Uint8Array(4), {}),
    () => Buffer.alloc(R.int(1, 4) * 1024 * 1024),
    any,
  ]
  // byteOffset whose valueOf detaches the buffer being written (must not read freed memory)
  function detachingArgs() {
    const ab = new ArrayBuffer(64)
    const v = new Uint8Array(ab)
    const evil = { valueOf() { try { structuredClone(ab, { transfer: [ab] }) } catch {} return 1 } }
    return R.chance(0.5) ? [v, evil, 8] : [v, 1, evil]
  }

  // ---- targets ------------------------------------------------------------------------------
  let client = null
  async function freshClient() {
    const h = { data() {}, drain() {}, error() {}, close() {}, timeout() {}, end() {} }
    const useUnix = R.chance(0.2)
    client = await connect(useUnix ? { unix: sinkUnix.unix, socket: h } : { hostname: '127.0.0.1', port: PORT, socket: h })
    client.__kind = useUnix ? 'unix' : 'tcp'
  }
  await freshClient()
  // Warm-up name resolution: the shared resolver runtime (its epoll/eventfd fds) starts once.
  await connect({ hostname: 'localhost', port: PORT, socket: { data() {} } }).then((s) => s.terminate())
  await sleep(20)
  await fullGc()
  const fdStart = fdCount()

  const pending = new Set() // connect promises not yet settled
  const stuck = []
  let slowCalls = 0
  let maxCallMs = 0
  const extraListeners = []

  /** Calls f() synchronously; returns { threw, value }. */
  function call(op, f, validate, ctx = () => '') {
    const t = now()
    let res
    try {
      res = { value: f() }
    } catch (err) {
      res = { threw: true, err }
    }
    const ms = now() - t
    maxCallMs = Math.max(maxCallMs, ms)
    if (ms > 2000) {
      slowCalls++
      let c = ''
      try {
        c = ctx()
      } catch {}
      problem(`${op} took ${ms.toFixed(0)} ms${c ? ' (' + c + ')' : ''}`)
    }
    if (res.threw) {
      const c = classify(res.err)
      if (c === null) {
        problem(`${op} threw a non-Error: ${describe(res.err)}`)
        count(op, `throw NON-ERROR ${describe(res.err)}`)
      } else count(op, `throw ${c}`)
      return res
    }
    const bad = validate(res.value)
    if (bad) {
      problem(`${op} returned ${describe(res.value)}: ${bad}`)
      count(op, `UNDOCUMENTED return ${describe(res.value)}`)
    } else count(op, `return ${typeof res.value === 'object' ? (res.value === null ? 'null' : res.value.constructor?.name) : typeof res.value}`)
    return res
  }
  const isUndef = (v) => (v === undefined ? '' : 'expected undefined')
  const isBool = (v) => (typeof v === 'boolean' ? '' : 'expected a boolean')
  const isWriteCount = (v) => (Number.isInteger(v) && v >= -1 ? '' : 'expected an integer >= -1')

  function fuzzConnect() {
    const o = options(false)
    const res = call('connect()', () => connect(o), (v) => (v instanceof Promise ? '' : 'expected a Promise'))
    if (res.threw || !(res.value instanceof Promise)) return
    const p = res.value
    const started = now()
    const entry = { p, started }
    pending.add(entry)
    p.then(
      (s) => {
        pending.delete(entry)
        const ok = s && typeof s.write === 'function' && (s.readyState === 1 || s.readyState === -1)
        count('connect() promise', ok ? `resolved Socket (readyState ${s.readyState})` : `resolved UNEXPECTED ${describe(s)}`)
        if (!ok) problem(`connect() resolved with ${describe(s)}`)
        try {
          s?.terminate?.()
        } catch (e) {
          problem(`terminate() after fuzzed connect threw ${describe(e)}`)
        }
      },
      (err) => {
        pending.delete(entry)
        const c = classify(err)
        if (c === null) problem(`connect() rejected with a non-Error: ${describe(err)}`)
        const sp = systemErrorProblem(err, ['connect', 'getaddrinfo'])
        if (sp) problem(`connect() rejected with a malformed system error: ${sp} (${describe(err)})`)
        count('connect() promise', `rejected ${c ?? 'NON-ERROR'}`)
      },
    )
  }

  function fuzzListen() {
    const o = options(true)
    const res = call('listen()', () => listen(o), (v) => (v && typeof v.stop === 'function' ? '' : 'expected a listener'), () => `hostname ${describe(Reflect.get(o, 'hostname'))}, unix ${describe(Reflect.get(o, 'unix'))}`)
    const sp = res.threw ? systemErrorProblem(res.err, ['listen', 'getaddrinfo']) : ''
    if (sp) problem(`listen() threw a malformed system error: ${sp} (${describe(res.err)})`)
    if (!res.threw && res.value?.stop) {
      if (R.chance(0.1)) extraListeners.push(res.value) // keep a few alive for listener-method fuzzing
      else call('listener.stop(true)', () => res.value.stop(true), isUndef)
    }
  }

  async function fuzzSocketMethod() {
    // target: the live client, a server-side socket, or a closed socket
    let s
    const r = R.next()
    if (r < 0.1) {
      const dead = await connect({ hostname: '127.0.0.1', port: PORT, socket: { data() {} } })
      dead.end()
      s = dead
    } else if (r < 0.3 && serverSockets.size) s = [...serverSockets][R.int(0, serverSockets.size - 1)]
    else {
      if (!client || client.readyState !== 1) await freshClient()
      s = client
    }
    const where = s.readyState === 1 ? (s.listener ? 'server' : 'client') : 'closed'
    const m = R.pick(['write', 'write', 'write', 'write', 'end', 'timeout', 'timeout', 'reload', 'setKeepAlive', 'setNoDelay', 'shutdown', 'pause', 'resume', 'ref', 'unref', 'flush', 'terminate'])
    const op = `${where} socket.${m}()`
    switch (m) {
      case 'write':
      case 'end': {
        let args
        const k = R.next()
        if (k < 0.05) args = detachingArgs()
        else {
          args = [R.pick(writeData)()]
          if (R.chance(0.4)) args.push(num())
          if (args.length === 2 && R.chance(0.5)) args.push(num())
        }
        call(op, () => s[m](...args), isWriteCount)
        break
      }
      case 'timeout': {
        const a = R.chance(0.1) ? [] : [R.chance(0.3) ? R.int(1, 3) : num()]
        call(op, () => s.timeout(...a), isUndef)
        break
      }
      case 'reload': {
        const a = R.chance(0.05) ? [] : [R.chance(0.7) ? shape({ socket: handlers() }) : any()]
        // Keep the sink's own sockets on benign handlers: reloading a server socket with throwing
        // handlers is covered by the faulty-handler area.
        if (where === 'server') call(op, () => s.reload(...a.length && a[0] && typeof a[0] === 'object' ? [any()] : a), isUndef)
        else call(op, () => s.reload(...a), isUndef)
        break
      }
      case 'setKeepAlive':
        call(op, () => s.setKeepAlive(...(R.chance(0.1) ? [] : R.chance(0.5) ? [any()] : [any(), num()])), isBool)
        break
      case 'setNoDelay':
        call(op, () => s.setNoDelay(...(R.chance(0.2) ? [] : [any()])), isBool)
        break
      case 'shutdown':
        call(op, () => s.shutdown(...(R.chance(0.3) ? [] : [any()])), isUndef)
        break
      default:
        call(op, () => s[m](...(R.chance(0.5) ? [] : [any()])), isUndef)
    }
  }

  function fuzzListenerMethod() {
    const targets = [sink, sinkUnix, ...extraListeners]
    const l = extraListeners.length && R.chance(0.6) ? R.pick(extraListeners) : R.pick(targets)
    const isSink = l === sink || l === sinkUnix
    const m = R.pick(['reload', 'getsockname', 'ref', 'unref', 'stop', 'data'])
    const op = `listener.${m}()`
    switch (m) {
      case 'reload':
        // the sinks only get invalid reload arguments (they must keep their handlers)
        call(op, () => l.reload(...(R.chance(0.05) ? [] : [isSink ? R.pick([any, () => ({}), () => ({ socket: {} }), () => ({ socket: { data: 1 } })])() : shape({ socket: handlers() })])), isUndef)
        break
      case 'getsockname':
        call(op, () => l.getsockname(...(R.chance(0.1) ? [] : [R.chance(0.5) ? {} : any()])), isUndef)
        break
      case 'stop':
        if (isSink) call(op, () => l.ref(any()), isUndef)
        else call(op, () => l.stop(any()), isUndef)
        break
      case 'data':
        call('listener.data = x', () => {
          l.data = any()
        }, isUndef)
        break
      default:
        call(op, () => l[m](...(R.chance(0.5) ? [] : [any()])), isUndef)
    }
  }

  const t0 = now()
  for (let i = 0; i < CASES; i++) {
    const r = R.next()
    if (r < 0.3) fuzzConnect()
    else if (r < 0.45) fuzzListen()
    else if (r < 0.88) await fuzzSocketMethod()
    else fuzzListenerMethod()
    if (i % 25 === 24) await sleep(0) // let events run
    for (const e of pending) {
      if (now() - e.started > SETTLE_MS && !e.reported) {
        e.reported = true
        stuck.push(e)
      }
    }
  }
  const settled = await waitFor(() => pending.size === 0, SETTLE_MS)
  figure('cases', CASES)
  figure('duration', +((now() - t0) / 1000).toFixed(1), 's')
  figure('slowest single call', +maxCallMs.toFixed(1), 'ms')
  check('every synchronous throw is an Error and every return value is documented', problems.length === 0, problems.length ? `${problems.length} problems; first: ${problems.slice(0, 5).join(' || ')}` : `${CASES} cases`)
  check('no call blocked for more than 2 s', slowCalls === 0, `${slowCalls} slow, max ${maxCallMs.toFixed(0)} ms`)
  check(`every connect() promise settled within ${SETTLE_MS / 1000} s`, settled && stuck.length === 0, `${pending.size} still pending, ${stuck.length} took longer`)
  figure('uncaughtException (from fuzzed handlers)', uncaught)
  figure('unhandledRejection (from fuzzed handlers)', unhandled)

  // Clean up, then: does it still work, and are all fds back?
  for (const l of extraListeners) l.stop(true)
  client?.terminate()
  await sleep(100)
  // sockets the fuzzed handlers left open: those of the sinks are closed by stop(true) below;
  // client sockets were terminated when their connect resolved.
  const echoed = await new Promise((resolve) => {
    const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data(s, d) { s.write(d) } } })
    connect({ hostname: '127.0.0.1', port: l.port, socket: { data(s, d) { s.end(); l.stop(true); resolve(String(d)) } } }).then((s) => s.write('still alive'), () => resolve('connect failed'))
    setTimeout(() => resolve('timeout'), 5000)
  })
  check('after fuzzing, a fresh listener/connect still echoes', echoed === 'still alive', echoed)
  sink.reload({ socket: sinkHandlers })
  sinkUnix.reload({ socket: sinkHandlers })
  await sleep(50)
  // A server socket the fuzzer pause()d does not read, so it does not see its peer's FIN (as in
  // Node); resume them all: each must then notice that its client is gone and close.
  const pausedLeft = serverSockets.size
  for (const ss of serverSockets) ss.resume()
  const allGone = await waitFor(() => serverSockets.size === 0, 3000)
  figure('server sockets still open after the clients left (paused by the fuzzer)', pausedLeft)
  check('after resume() every server socket whose client is gone closes', allGone, `${serverSockets.size} of ${pausedLeft} still open`)
  // Recreate the baseline's state: one live client to the sink, the sinks listening.
  await freshClient()
  await sleep(50)
  await fullGc()
  // A background end(data) flush towards a peer that stopped reading holds its fd until the
  // peer takes bytes again or the flush's 60-s stall limit resets it (src/linger.rs).
  await waitFor(() => fdCount() <= fdStart, 65000)
  const fdEnd = fdCount()
  check('fd count back to its start (only the sinks and one client open)', fdEnd === fdStart, `${fdStart} -> ${fdEnd} (server sockets open: ${serverSockets.size}, 1 expected)`)
  client.terminate()
  sink.stop(true)
  sinkUnix.stop(true)

  // ---- phase 2: re-entrant calls from inside handlers ------------------------------------
  // Every handler of a listener and its clients calls 0-3 random methods (valid or fuzzed
  // arguments) on its own socket, on the listener or on another socket: end/close/terminate/
  // write/pause/resume/shutdown/timeout/reload/stop(true)/dispose... while bunnet is inside its
  // own event dispatch. Checks: no crash, every throw an Error, each opened socket closed
  // exactly once (readyState -1 inside close).
  {
    const ROUNDS = quick ? 150 : 600
    const opened = new Set()
    const closedOnce = new Set()
    let doubleClose = 0
    let badCloseRs = 0
    let reentrantCalls = 0
    let reentrantThrows = 0
    let nonErrorThrows = 0
    let l = null
    const live = []
    const actions = [
      (s) => s.end(R.chance(0.5) ? 'bye' : undefined), (s) => s.terminate(), (s) => s.close(), (s) => s.write(R.pick(writeData)()),
      (s) => s.pause(), (s) => s.resume(), (s) => s.shutdown(R.chance(0.5)), (s) => s.timeout(R.pick([0, 1, num()])),
      (s) => s.reload({ socket: reentrant() }), (s) => s.reload(any()), (s) => l?.stop(true), (s) => l?.stop(),
      (s) => l?.reload({ socket: reentrant() }), (s) => s.ref(), (s) => s.unref(), (s) => s.setNoDelay(any()),
      (s) => s.setKeepAlive(any(), num()), (s) => s[Symbol.dispose](), (s) => l?.[Symbol.dispose](), (s) => s.flush(),
      (s) => live.length && R.pick(live).terminate(), (s) => live.length && R.pick(live).end('x'), (s) => s.write(R.pick(writeData)(), num(), num()),
    ]
    function act(s) {
      for (let k = R.int(0, 3); k > 0; k--) {
        reentrantCalls++
        try {
          R.pick(actions)(s)
        } catch (e) {
          reentrantThrows++
          if (!(e instanceof Error)) nonErrorThrows++
        }
      }
    }
    function reentrant() {
      const h = {}
      for (const ev of ['open', 'data', 'drain', 'end', 'close', 'timeout', 'error']) {
        h[ev] = function (s) {
          if (ev === 'open') {
            opened.add(s)
            live.push(s)
          }
          if (ev === 'close') {
            if (closedOnce.has(s)) doubleClose++
            closedOnce.add(s)
            if (s.readyState !== -1) badCloseRs++
            const i = live.indexOf(s)
            if (i >= 0) live.splice(i, 1)
          }
          act(s)
        }
      }
      return h
    }
    const t1 = now()
    for (let round = 0; round < ROUNDS; round++) {
      l = listen({ hostname: '127.0.0.1', port: 0, socket: reentrant() })
      const ps = []
      for (let i = 0; i < 5; i++) ps.push(connect({ hostname: '127.0.0.1', port: l.port, socket: reentrant() }).then((s) => { try { s.write('hello') } catch {} return s }, () => null))
      const socks = await Promise.all(ps)
      await sleep(2)
      for (const s of socks) if (s && R.chance(0.5)) act(s)
      await sleep(2)
      l.stop(true)
      for (const s of socks) s?.terminate()
    }
    l = null
    await waitFor(() => [...opened].every((s) => closedOnce.has(s)), 5000)
    const notClosed = [...opened].filter((s) => !closedOnce.has(s))
    figure('re-entrant phase: rounds / handler-made calls / of which threw', `${ROUNDS} / ${reentrantCalls} / ${reentrantThrows}`)
    figure('re-entrant phase: duration', +((now() - t1) / 1000).toFixed(1), 's')
    check('re-entrant calls from handlers: every throw is an Error', nonErrorThrows === 0, `${nonErrorThrows} non-Error throws`)
    check('re-entrant calls from handlers: every opened socket closed exactly once, readyState -1 in close', notClosed.length === 0 && doubleClose === 0 && badCloseRs === 0, `${opened.size} opened, ${notClosed.length} never closed (${notClosed.slice(0, 5).map((s) => `readyState ${s.readyState}${s.listener ? ' server' : ' client'}`).join(', ')}), ${doubleClose} closed twice, ${badCloseRs} with readyState != -1`)
    opened.clear()
    closedOnce.clear()
  }

  const rows = [...outcomes.entries()].map(([k, n]) => [...k.split('\u0000'), n]).sort((a, b) => a[0].localeCompare(b[0]) || b[2] - a[2])
  table('Outcomes per operation', ['operation', 'outcome', 'count'], rows)
  table('Errors reaching process handlers (thrown/rejected by fuzzed handlers)', ['event: class', 'count'], [...uncaughtClasses.entries()])
  rmSync(dir, { recursive: true, force: true })
}

runArea(main)
