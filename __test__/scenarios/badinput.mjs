// The bad-input catalogue of spec §8: synchronous throws with Bun's class, code and message.
import { connect, listen } from '../helpers.mjs'

const TE = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }
const RE = { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }
const both = [
  ['connect', (o) => connect(o)],
  ['listen', (o) => listen(o)],
]

export function optionsObjectRequired(t) {
  for (const v of [undefined, null, 'x', 1]) {
    t.throws(() => connect(v), { ...TE, message: 'Expected options object' })
    t.throws(() => listen(v), { ...TE, message: 'Expected object' })
  }
  t.throws(() => connect(), { ...TE, message: 'Expected options object' })
  t.throws(() => listen(), { ...TE, message: 'Expected object' })
  t.is(connect.length, 1)
  t.is(listen.length, 1)
}

export function handlerValidation(t) {
  const base = { hostname: '127.0.0.1', port: 1 }
  for (const [, fn] of both) {
    t.throws(() => fn({ ...base }), { ...TE, message: 'SocketOptions.socket is required' })
    t.throws(() => fn({ ...base, socket: null }), { ...TE, message: 'SocketHandler must be an object' })
    t.throws(() => fn({ ...base, socket: 1 }), { ...TE, message: 'SocketHandler must be an object' })
    t.throws(() => fn({ ...base, socket: [] }), { ...TE, message: 'SocketHandler must be an object' })
    t.throws(() => fn(Object.assign([], { ...base, socket: { data() {} } })), { ...TE, message: 'SocketOptions must be an object' })
    t.throws(() => fn({ ...base, socket: {} }), { ...TE, message: 'Expected at least "data" or "drain" callback' })
    t.throws(() => fn({ ...base, socket: { open() {} } }), { ...TE, message: 'Expected at least "data" or "drain" callback' })
    t.throws(() => fn({ ...base, socket: { data: 1 } }), { ...TE, message: 'Expected "onData" callback to be a function' })
    const names = { open: 'onOpen', close: 'onClose', error: 'onError', drain: 'onWritable', end: 'onEnd', timeout: 'onTimeout', connectError: 'onConnectError', handshake: 'onHandshake' }
    for (const [key, internal] of Object.entries(names)) {
      t.throws(() => fn({ ...base, socket: { data() {}, [key]: 'x' } }), { ...TE, message: `Expected "${internal}" callback to be a function` })
    }
    t.throws(() => fn({ ...base, socket: { data() {}, binaryType: 'blob' } }), {
      ...TE,
      message: 'SocketHandler.binaryType must be "arraybuffer", "buffer", or "uint8array"',
    })
    t.throws(() => fn({ ...base, socket: { data() {}, binaryType: 'nodebuffer' } }), { ...TE })
    t.throws(() => fn({ ...base, socket: { data() {}, binaryType: 1 } }), { ...TE, message: 'SocketHandler.binaryType must be a string' })
    // Only undefined and null count as absent: false and 0 are not functions (Bun)
    t.throws(() => fn({ ...base, socket: { data() {}, open: false } }), { ...TE, message: 'Expected "onOpen" callback to be a function' })
    t.throws(() => fn({ ...base, socket: { drain() {}, data: 0 } }), { ...TE, message: 'Expected "onData" callback to be a function' })
    t.throws(() => fn({ ...base, socket: { data: false } }), { ...TE, message: 'Expected "onData" callback to be a function' })
  }
}

export function targetValidation(t) {
  const socket = { data() {} }
  for (const [, fn] of both) {
    // falsy values count as not given (Bun), a truthy hostname must not stringify to ""
    for (const o of [{}, { hostname: '' }, { hostname: null }, { unix: '' }, { hostname: 0 }, { hostname: false }, { hostname: NaN }, { unix: 0 }, { unix: false }]) {
      t.throws(() => fn({ socket, ...o }), { ...TE, message: 'Expected either "hostname" or "unix"' })
    }
    for (const hostname of [[], [''], { toString: () => '' }]) {
      t.throws(() => fn({ socket, hostname, port: 0 }), { ...TE, message: 'Expected a non-empty "hostname"' })
    }
    t.throws(() => fn({ socket, unix: 1 }), { ...TE, message: 'SocketOptions.unix must be a string' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1' }), { ...TE, message: 'Missing "port"' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 'abc' }), { ...RE, message: 'SocketOptions.port must be an integer (received NaN)' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: NaN }), { ...RE, message: 'SocketOptions.port must be an integer (received NaN)' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 1.5 }), { ...RE, message: 'SocketOptions.port must be an integer (received 1.5)' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: null }), { ...TE, message: 'Missing "port"' })
    // BigInt ports are taken as Number() takes them (coercion threw a BigInt TypeError).
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 70000n }), { ...RE, message: 'SocketOptions.port must be in the range [0, 65535] (received 70000)' })
    for (const p of [-1n, 2n ** 70n]) t.throws(() => fn({ socket, hostname: '127.0.0.1', port: p }), { ...RE, message: 'SocketOptions.port must be in the range [0, 65535]' })
    // Numbers as JS prints them; integers beyond 2 ** 53 - 1 are "not an integer" (as in Bun).
    for (const [p, shown] of [[2 ** 53, '9007199254740992'], [1e21, '1e+21'], [1e-7, '1e-7'], [-1e-7, '-1e-7'], [5e-324, '5e-324'], [1.23e-5, '0.0000123']])
      t.throws(() => fn({ socket, hostname: '127.0.0.1', port: p }), { ...RE, message: `SocketOptions.port must be an integer (received ${shown})` })
    for (const p of [-1, 65536, 70000]) {
      t.throws(() => fn({ socket, hostname: '127.0.0.1', port: p }), { ...RE, message: `SocketOptions.port must be in the range [0, 65535] (received ${p})` })
    }
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: 'x' }), { ...TE, message: 'TLSOptions must be an object' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: 1 }), { ...TE, message: 'TLSOptions must be an object' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: [] }), { ...TE, message: 'TLSOptions must be an object' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: { ALPNProtocols: ['h2'] } }), {
      ...TE,
      message: 'TLSOptions.ALPNProtocols must be of type string, ArrayBuffer, or null',
    })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: { ca: 1 } }), {
      ...TE,
      message: 'TLSOptions.ca must be of type string, ArrayBuffer, Blob, array of <string, ArrayBuffer, or Blob>, or null',
    })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: { serverName: 1 } }), { ...TE, message: 'TLSOptions.serverName must be a string' })
    t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, tls: { rejectUnauthorized: 'no' } }), {
      ...TE,
      message: 'TLSOptions.rejectUnauthorized must be a boolean',
    })
    for (const key of ['allowHalfOpen', 'exclusive', 'ipv6Only']) {
      t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, [key]: 'yes' }), { ...TE, message: `SocketOptions.${key} must be a boolean` })
      // null is not a boolean either (Bun); only undefined means "not given"
      t.throws(() => fn({ socket, hostname: '127.0.0.1', port: 0, [key]: null }), { ...TE, message: `SocketOptions.${key} must be a boolean` })
    }
  }
}

export async function acceptedCoercions(t) {
  const l = listen({ hostname: '127.0.0.1', port: '0', tls: {}, data: 5, unknownKey: true, socket: { drain() {}, binaryType: undefined } })
  t.teardown(() => l.stop(true))
  t.true(l.port > 0)
  t.is(l.data, 5)
  const s = await connect({ hostname: '127.0.0.1', port: String(l.port), tls: {}, data: 5, socket: { data() {} } })
  t.is(s.data, 5)
  const big = await connect({ hostname: '127.0.0.1', port: BigInt(l.port), socket: { data() {} } })
  t.is(big.remotePort, l.port)
  big.end()
  s.end()
  for (const tls of [false, null, undefined]) {
    const l2 = listen({ hostname: '127.0.0.1', port: 0, tls, socket: { data() {} } })
    l2.stop()
  }
  // A TLSOptions object whose known fields are all absent or at their defaults means plain TCP
  // (Bun 1.4.5): the plain echo below answers only a plain client.
  const echo = listen({ hostname: '127.0.0.1', port: 0, socket: { data: (s, d) => s.write(d) } })
  t.teardown(() => echo.stop(true))
  for (const tls of [{ ca: undefined }, { ca: [] }, { requestCert: false }, { secureOptions: 0 }, { lowMemoryMode: false }, { x: 1 }]) {
    const got = []
    let arrived
    const echoed = new Promise((r) => (arrived = r))
    const c = await connect({ hostname: '127.0.0.1', port: echo.port, tls, socket: { data: (s, d) => (got.push(String(d)), arrived()) } })
    t.is(c.getTLSVersion(), null, JSON.stringify(tls))
    c.write('plain')
    // Waits for the echo (a fixed 30 ms was too short on a loaded machine), or fails after 2 s.
    await Promise.race([echoed, new Promise((r) => setTimeout(r, 2000))])
    t.deepEqual(got, ['plain'], JSON.stringify(tls))
    c.end()
  }
  // a falsy unix beside a hostname is not given: the hostname is used (Bun)
  for (const unix of ['', 0, false]) {
    const l3 = listen({ unix, hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    t.true(l3.port > 0)
    l3.stop()
  }
  // binaryType also takes the class names (Bun)
  const typed = await connect({ hostname: '127.0.0.1', port: echo.port, socket: { binaryType: 'ArrayBuffer', data() {} } })
  typed.end()
  // `hostname: 1` is stringified ("1" = 0.0.0.1 to getaddrinfo); where a connect to it lands
  // depends on the host's network, so only the listen side is pinned.
  t.throws(() => listen({ hostname: 1, port: 0, socket: { data() {} } }), { code: 'EADDRNOTAVAIL' })
}

export function getterThatThrowsPropagates(t) {
  const boom = new Error('getter')
  const options = { hostname: '127.0.0.1', port: 1, get socket() { throw boom } }
  t.is(t.throws(() => connect(options)), boom)
  t.is(t.throws(() => listen(options)), boom)
}

export function badPemThrowsSynchronously(t) {
  for (const tls of [{ key: 'garbage', cert: 'garbage' }, { ca: 'garbage' }, { cert: Buffer.from('nope') }]) {
    t.throws(() => connect({ hostname: '127.0.0.1', port: 1, tls, socket: { data() {} } }), { code: 'ERR_OSSL_PEM_NO_START_LINE' })
    t.throws(() => listen({ hostname: '127.0.0.1', port: 0, tls, socket: { data() {} } }), { code: 'ERR_OSSL_PEM_NO_START_LINE' })
  }
}

export async function classesCannotBeMisused(t) {
  const { Socket, SocketListener } = await import('../../index.mjs')
  t.throws(() => new Socket(), { instanceOf: TypeError, message: 'Illegal constructor' })
  t.throws(() => new SocketListener(), { instanceOf: TypeError, message: 'Illegal constructor' })
  // the constructors are JS functions (src/class.rs): no argument list gets an instance out of them
  t.throws(() => new Socket({}, 0, 'data'), { instanceOf: TypeError, code: 'ERR_ILLEGAL_CONSTRUCTOR' })
  t.throws(() => Socket(), { instanceOf: TypeError, message: 'Illegal constructor' })
  t.is(Socket.name, 'Socket')
  t.is(SocketListener.name, 'SocketListener')
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  t.teardown(() => l.stop(true))
  t.true(l instanceof SocketListener)
  const s = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() {} } })
  t.teardown(() => s.end())
  t.true(s instanceof Socket)
  t.is(s.constructor, Socket)
  t.is(l.constructor, SocketListener)
  t.is(Object.getPrototypeOf(s), Socket.prototype)
  t.throws(() => Socket.prototype.write.call({}, 'x'), { instanceOf: TypeError })
  t.throws(() => Socket.prototype.write.call(l, 'x'), { instanceOf: TypeError })
  t.throws(() => SocketListener.prototype.stop.call(s), { instanceOf: TypeError })
  t.throws(() => Socket.prototype.write.call(Object.create(s), 'x'), { instanceOf: TypeError, message: /Illegal invocation/ })
  const readyState = Object.getOwnPropertyDescriptor(Socket.prototype, 'readyState').get
  t.throws(() => readyState.call(l), { instanceOf: TypeError, message: /Illegal invocation/ })
  t.is(readyState.call(s), 1)
  t.is(s.readyState, 1)
  t.throws(() => readyState.call(Object.create(s)), { instanceOf: TypeError, message: /Illegal invocation/ })
  // primitives, null and functions as receivers: refused the same way, not a TypeError of the `in` check
  for (const bad of [5, 'x', null, undefined, Symbol('x'), () => {}, Socket]) {
    t.throws(() => Socket.prototype.write.call(bad, 'x'), { instanceOf: TypeError, message: /Illegal invocation/ })
    t.throws(() => readyState.call(bad), { instanceOf: TypeError, message: /Illegal invocation/ })
  }
  t.is(s.write(''), 0)
  // the object's table index (src/class.rs) is a private field: no key, symbol or spread shows it,
  // and nothing copied or assigned makes another object a socket
  t.deepEqual(Reflect.ownKeys(s), [])
  t.deepEqual(Reflect.ownKeys(l), [])
  t.deepEqual(Reflect.ownKeys({ ...s }), [])
  const copy = Object.assign(Object.create(Socket.prototype), s)
  t.throws(() => copy.write('x'), { instanceOf: TypeError, message: /Illegal invocation/ })
  t.throws(() => readyState.call(structuredClone({ ...s })), { instanceOf: TypeError, message: /Illegal invocation/ })
  // the members are the prototype's own, non-enumerable, and only act on instances of their class
  t.deepEqual(Object.keys(Socket.prototype), [])
  t.is(Object.getPrototypeOf(Socket.prototype), Object.prototype)
  t.is(Object.getPrototypeOf(SocketListener.prototype), Object.prototype)
  t.throws(() => SocketListener.prototype.stop.call(Object.create(l)), { instanceOf: TypeError, message: /Illegal invocation/ })
  t.throws(() => Socket.prototype.write.call(new Proxy(s, {}), 'x'), { instanceOf: TypeError, message: /Illegal invocation/ })
  // the argument count reaches the native side: a missing argument and a passed `undefined` differ,
  // and arguments past the third are ignored
  t.throws(() => s.timeout(), { message: 'Expected 1 argument, got 0' })
  t.is(s.timeout(undefined), undefined)
  t.is(Reflect.apply(Socket.prototype.write, s, ['abcd', 1, 2, 'extra']), 2)
  t.is(Socket.prototype.write.call(s, 'ok'), 2)
  t.is(s.write('ok'), 2)
}

// Inside a handler, the running socket's own methods and another socket's must each act on their
// own socket, and every other receiver must be refused.
export async function receiversAreCheckedInsideHandlers(t) {
  const { Socket } = await import('../../index.mjs')
  const seen = []
  const accepted = []
  const got = new Promise((resolve) => {
    const l = listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open: (s) => void accepted.push(s),
        data(s, d) {
          if (d.toString() !== 'go') return
          seen.push(t.throws(() => Socket.prototype.write.call(Object.create(s), 'x'), { instanceOf: TypeError, message: /Illegal invocation/ }) !== undefined)
          seen.push(t.throws(() => Socket.prototype.write.call({}, 'x'), { instanceOf: TypeError }) !== undefined)
          seen.push(Socket.prototype.write.call(s, 'own;') === 4)
          const other = accepted.find((x) => x !== s)
          seen.push(other.write('other;') === 6)
          seen.push(s.readyState === 1)
        },
      },
    })
    t.teardown(() => l.stop(true))
    let a = ''
    let b = ''
    const done = () => a === 'own;' && b === 'other;' && resolve()
    Promise.all([
      connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (_, d) => { a += d; done() } } }),
      connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (_, d) => { b += d; done() } } }),
    ]).then(async ([sa, sb]) => {
      t.teardown(() => { sa.end(); sb.end() })
      while (accepted.length < 2) await new Promise((r) => setTimeout(r, 5))
      sa.write('go')
    })
  })
  await got
  t.deepEqual(seen, [true, true, true, true, true])
}
