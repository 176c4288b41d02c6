// write()/end(): accepted inputs, offsets, return values, backpressure and drain (spec §4.3, §4.4).
import { createHash } from 'node:crypto'

import { connect, deferred, patterned, sender, server, until } from '../helpers.mjs'

/** A connected pair: client `c` and a server that collects what it receives into `got()`. */
async function pair(t, serverExtra = {}) {
  const chunks = []
  const opened = deferred()
  const l = server(t, { open: (s) => opened.resolve(s), data: (s, d) => chunks.push(Buffer.from(d)), ...serverExtra })
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() {}, drain() {} } })
  t.teardown(() => c.end())
  const s = await opened.promise
  return { c, s, got: () => Buffer.concat(chunks) }
}

export async function everyInputKind(t) {
  const { c, got } = await pair(t)
  const u8 = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])
  const cases = [
    [() => c.write(), 0, []],
    [() => c.write(undefined), 0, []],
    [() => c.write(''), 0, []],
    [() => c.write(Buffer.alloc(0)), 0, []],
    [() => c.write('é'), 2, [0xc3, 0xa9]],
    [() => c.write(Buffer.from('ab')), 2, [0x61, 0x62]],
    [() => c.write(u8.subarray(2, 4)), 2, [3, 4]],
    [() => c.write(new Uint16Array([0x0201])), 2, [1, 2]],
    [() => c.write(new DataView(u8.buffer, 6, 2)), 2, [7, 8]],
    [() => c.write(u8.buffer.slice(0, 1)), 1, [1]],
    [() => c.write(new Uint8Array(new SharedArrayBuffer(2)).fill(9).buffer), 2, [9, 9]],
    [() => c.write(u8, 2, 3), 3, [3, 4, 5]],
    [() => c.write('abcdef', 2, 2), 2, [0x63, 0x64]],
    [() => c.write(u8, undefined, 2), 2, [1, 2]],
    [() => c.write(u8, 8, 0), 0, []],
    [() => c.write(u8, 0), 8, [1, 2, 3, 4, 5, 6, 7, 8]],
    // deliberate fix: a missing length means the rest after the offset (Bun throws RangeError)
    [() => c.write(u8, 6), 2, [7, 8]],
    // a string second argument without a length is an encoding (Bun, node:net): it applies to
    // strings (unknown names mean UTF-8) and is ignored for binary data
    [() => c.write('6162', 'hex'), 2, [0x61, 0x62]],
    [() => c.write('YWI=', 'base64'), 2, [0x61, 0x62]],
    [() => c.write('é', 'latin1'), 1, [0xe9]],
    [() => c.write('é', 'UTF8'), 2, [0xc3, 0xa9]],
    [() => c.write('é', 'bogus'), 2, [0xc3, 0xa9]],
    [() => c.write(u8.subarray(0, 2), 'hex'), 2, [1, 2]],
    [() => c.write(new String('ab')), 2, [0x61, 0x62]],
    [() => c.write(new String('ff'), 'hex'), 1, [0xff]],
  ]
  const expected = []
  let total = 0
  for (const [fn, n, bytes] of cases) {
    t.is(fn(), n)
    expected.push(...bytes)
    total += n
  }
  t.is(c.bytesWritten, total)
  await until(() => got().length === expected.length)
  t.deepEqual([...got()], expected)
}

export async function invalidArgumentsThrowAndSendNothing(t) {
  const { c, got } = await pair(t)
  const u8 = new Uint8Array(8)
  const type = (received) => ({
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: `The "data" argument must be of type string, buffer, or blob. ${received}`,
  })
  t.throws(() => c.write(null), type('Received null'))
  t.throws(() => c.write(123), type('Received type number (123)'))
  t.throws(() => c.write(true), type('Received type boolean (true)'))
  t.throws(() => c.write({}), type('Received an instance of Object'))
  t.throws(() => c.write([1, 2]), type('Received an instance of Array'))
  const range = (name, max, got) => ({
    instanceOf: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: `The value of "${name}" is out of range. It must be >= 0 and <= ${max}. Received ${got}`,
  })
  t.throws(() => c.write(u8, -1), range('byteOffset', '9007199254740991', -1))
  t.throws(() => c.write(u8, 9), range('byteOffset', 8, 9))
  t.throws(() => c.write(u8, 0, -1), range('byteLength', '9007199254740991', -1))
  t.throws(() => c.write(u8, 4, 5), range('byteLength', 4, 5))
  t.throws(() => c.write('abcdef', 10, 2), range('byteOffset', 6, 10))
  const integer = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: "Expected byteOffset to be a integer for 'Socket.write'." }
  t.throws(() => c.write(u8, 1.5, 2), integer)
  t.throws(() => c.write(u8, NaN, 2), integer)
  t.throws(() => c.write(u8, '1', 2), integer)
  t.throws(() => c.write('6162', 'hex', 1), integer)
  // Bun's integer test (JSC's int52): -0 and integers from 2^51 on are not integers
  t.throws(() => c.write(u8, -0, 2), integer)
  t.throws(() => c.write(u8, 2 ** 51, 1), integer)
  t.throws(() => c.write(u8, 2 ** 53, 1), integer)
  t.throws(() => c.write(u8, 0, -0), { ...integer, message: "Expected byteLength to be a integer for 'Socket.write'." })
  t.throws(() => c.write(u8, 2 ** 31, 1), range('byteOffset', 8, 2147483648))
  // end() with bad data throws and does not end the socket
  t.throws(() => c.end(123), type('Received type number (123)'))
  t.is(c.readyState, 1)
  t.is(c.bytesWritten, 0)
  t.is(c.end('78', 'hex'), 1) // 'x', with an encoding as write() takes it
  await until(() => got().length === 1)
  t.is(got().toString(), 'x')
}

export async function writesAfterEndOrShutdownReturnMinusOne(t) {
  const { c } = await pair(t)
  t.is(c.end(), 0)
  t.is(c.write('x'), -1)
  t.is(c.end('x'), -1)
  t.is(c.end(), -1)
  t.is(c[Symbol.dispose](), -1)
  const p = await pair(t)
  p.c.shutdown()
  t.is(p.c.readyState, 1)
  t.is(p.c.write('x'), -1)
}

export async function shortWriteThenZeroThenOneDrain(t) {
  // The server does not read (paused), so the kernel buffers fill up.
  const { c, s, got } = await pair(t)
  s.pause()
  let drains = 0
  const drained = deferred()
  c.reload({ socket: { data() {}, drain() { drains++; drained.resolve() } } })
  const big = Buffer.alloc(64 * 1024 * 1024, 7)
  const first = c.write(big)
  t.true(first > 0 && first < big.length, `first write took ${first}`)
  t.is(c.write(big), 0)
  t.is(c.write('x'), 0)
  t.is(c.bytesWritten, first)
  s.resume()
  await drained.promise
  t.is(drains, 1)
  await until(() => got().length === first, 10000, 'all taken bytes')
  t.is(got().length, first)
}

export async function noDrainAfterShutdown(t) {
  // A write cut short, then shutdown(): every later write returns -1, so no drain is owed (Bun's
  // plain sockets fire none); the peer still gets every byte taken, then the FIN.
  const ended = deferred()
  const { c, s, got } = await pair(t, { end: () => ended.resolve() })
  s.pause()
  const log = []
  c.reload({ socket: { data() {}, drain: () => log.push('drain') } })
  const big = Buffer.alloc(32 * 1024 * 1024, 3)
  const taken = c.write(big)
  t.true(taken > 0 && taken < big.length, `took ${taken}`)
  c.shutdown()
  t.is(c.write('x'), -1)
  s.resume()
  await ended.promise
  t.is(got().length, taken)
  await new Promise((r) => setImmediate(r))
  t.deepEqual(log, [])
}

export async function bulkWithBackpressureKeepsEveryByte(t) {
  const total = 16 * 1024 * 1024
  const src = patterned(total)
  const recv = createHash('sha256')
  let received = 0
  const done = deferred()
  const l = server(t, {
    data(s, d) {
      recv.update(d)
      received += d.length
      if (received === total) done.resolve()
    },
  })
  let drains = 0
  const { pump } = sender(src, 256 * 1024)
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() {}, drain(s) { drains++; pump(s) } } })
  t.teardown(() => c.end())
  pump(c)
  await done.promise
  t.is(c.bytesWritten, total)
  t.is(recv.digest('hex'), createHash('sha256').update(src).digest('hex'))
  t.log(`drains: ${drains}`)
}

export async function unixSocketsWriteToo(t) {
  const { tempDir, listen } = await import('../helpers.mjs')
  const path = `${tempDir(t)}/w.sock`
  const chunks = []
  const l = listen({ unix: path, socket: { data: (s, d) => chunks.push(String(d)) } })
  t.teardown(() => l.stop(true))
  const c = await connect({ unix: path, socket: { data() {} } })
  t.is(c.write('unix'), 4)
  t.is(c.end('!'), 1)
  await until(() => chunks.join('') === 'unix!')
}

export async function endDeliversTheWholeFinalChunk(t) {
  // Bun's end(data) returns what one send took; bunnet also flushes the rest before the FIN, so
  // every byte of the final chunk arrives and the return value says so.
  const chunks = []
  const ended = deferred()
  const opened = deferred()
  const l = server(t, { open: (s) => opened.resolve(s), data: (s, d) => chunks.push(Buffer.from(d)), close: () => ended.resolve() })
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() {} } })
  const s = await opened.promise
  s.pause()
  const big = Buffer.alloc(24 * 1024 * 1024)
  for (let i = 0; i < big.length; i += 4096) big[i] = i / 4096
  const closed = []
  c.reload({ socket: { data() {}, close: () => closed.push('close') } })
  t.is(c.end(big), big.length)
  t.deepEqual(closed, ['close'])
  t.is(c.readyState, -1)
  t.is(c.bytesWritten, big.length)
  s.resume()
  await ended.promise
  t.true(Buffer.concat(chunks).equals(big))
}

// Several sockets' data in one wake-up are delivered from one JS loop (src/batch.rs), and each
// method finds its native side through its receiver's private index (src/class.rs). Each server
// handler of such a round writes to its
// own socket, to another one and through an inherited receiver: every byte must reach the socket
// it was written to, and the inherited receiver must be refused.
export async function writesFromOneRoundReachTheirOwnSockets(t) {
  const { Socket } = await import('../../index.mjs')
  const N = 8
  const byLetter = new Map()
  let refused = 0
  const l = server(t, {
    data(s, d) {
      for (const ch of String(d)) {
        if (!byLetter.has(ch)) {
          byLetter.set(ch, s)
          continue
        }
        const next = String.fromCharCode(97 + ((ch.charCodeAt(0) - 97 + 1) % N))
        s.write(ch)
        byLetter.get(next).write(ch.toUpperCase())
        try {
          Socket.prototype.write.call(Object.create(s), '!')
        } catch (e) {
          if (e instanceof TypeError) refused++
        }
      }
    },
  })
  const got = Array.from({ length: N }, () => '')
  const clients = await Promise.all(
    got.map((_, i) => connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (_, d) => void (got[i] += d) } })),
  )
  t.teardown(() => clients.forEach((c) => c.end()))
  clients.forEach((c, i) => c.write(String.fromCharCode(97 + i)))
  await until(() => byLetter.size === N, 5000, 'every letter seen')
  for (let round = 0; round < 20; round++) clients.forEach((c, i) => c.write(String.fromCharCode(97 + i)))
  const want = got.map((_, i) => String.fromCharCode(97 + i).repeat(20) + String.fromCharCode(65 + ((i + N - 1) % N)).repeat(20))
  const sorted = () => got.map((g) => [...g].sort().join(''))
  await until(() => got.every((g) => g.length >= 40), 5000, 'replies')
  t.deepEqual(sorted(), want.map((w) => [...w].sort().join('')))
  t.is(refused, 20 * N)
}
