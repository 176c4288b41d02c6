// listen() and SocketListener: binding rules, unix paths, stop/ref/reload, data (spec §3).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { connect, deferred, listen, recorder, server, tempDir, until } from '../helpers.mjs'

const noop = { data() {} }

export async function tcpListenerShape(t) {
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: noop, data: 1 })
  t.true(l.port > 0)
  t.is(l.hostname, '127.0.0.1')
  t.is(l.unix, undefined)
  t.is(l.data, 1)
  l.data = 2
  t.is(l.data, 2)
  t.is(Object.prototype.toString.call(l), '[object Listener]')
  t.is(typeof l[Symbol.dispose], 'function')
  const port = l.port
  t.is(l.stop(), undefined)
  t.is(l.data, undefined) // Bun 1.4.5: a stopped listener's data reads undefined...
  l.data = 3
  t.is(l.data, 3) // ...and a later assignment sticks
  t.is(l.stop(), undefined)
  t.is(l.data, 3)
  t.is(l.port, port)
  t.is(l.hostname, '127.0.0.1')
  await t.throwsAsync(connect({ hostname: '127.0.0.1', port, socket: noop }), { code: 'ECONNREFUSED' })
}

export async function anyAddressAndDualStack(t) {
  for (const hostname of ['0.0.0.0', '::']) {
    const l = listen({ hostname, port: 0, socket: noop })
    t.is(l.hostname, hostname)
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: noop })
    c.end()
    l.stop(true)
  }
  const opened = deferred()
  const l = server(t, { open: (s) => opened.resolve(s), data() {} })
  l.stop(true)
  const v6 = listen({ hostname: '::', port: 0, socket: { open: (s) => opened.resolve(s), data() {} } })
  t.teardown(() => v6.stop(true))
  const c = await connect({ hostname: '127.0.0.1', port: v6.port, socket: noop })
  t.teardown(() => c.end())
  t.is(c.remoteAddress, '127.0.0.1')
  const s = await opened.promise
  t.is(s.remoteAddress, '::ffff:127.0.0.1')
  t.is(s.remoteFamily, 'IPv6')
}

export async function ipv6OnlyRefusesIPv4(t) {
  // With ipv6Only the port's IPv4 side stays free, so a listener of another test running at the
  // same time can get the same number on 127.0.0.1 (it happened once in CI): a connect that
  // reaches such a listener is tried again on a fresh port, but this one must never accept it.
  for (let attempt = 1; ; attempt++) {
    const accepted = []
    const l = listen({ hostname: '::', port: 0, ipv6Only: true, socket: { data() {}, open: (s) => accepted.push(s.remoteAddress) } })
    try {
      const got = await connect({ hostname: '127.0.0.1', port: l.port, socket: noop }).then(
        (c) => c,
        (e) => e,
      )
      if (got instanceof Error) {
        t.is(got.code, 'ECONNREFUSED')
        const c = await connect({ hostname: '::1', port: l.port, socket: noop })
        await until(() => accepted.length === 1)
        t.deepEqual(accepted, ['::1'])
        c.end()
        return
      }
      got.end()
      await new Promise((r) => setTimeout(r, 50))
      t.deepEqual(accepted, [], 'the IPv6-only listener accepted an IPv4 connection')
      if (attempt === 5) t.fail(`127.0.0.1 had a listener on each of ${attempt} ports tried`)
    } finally {
      l.stop(true)
    }
  }
}

export function busyPortIsEADDRINUSE(t) {
  const l = server(t, noop)
  for (const extra of [{}, { exclusive: true }, { reusePort: true }]) {
    const err = t.throws(() => listen({ hostname: '127.0.0.1', port: l.port, socket: noop, ...extra }), {
      instanceOf: Error,
      code: 'EADDRINUSE',
      message: 'Failed to listen at 127.0.0.1',
    })
    t.like(err, { errno: -98, syscall: 'listen', address: '127.0.0.1', port: l.port })
  }
}

export async function reusePortSharesAPort(t) {
  const a = listen({ hostname: '127.0.0.1', port: 0, reusePort: true, socket: noop })
  t.teardown(() => a.stop(true))
  const b = listen({ hostname: '127.0.0.1', port: a.port, reusePort: true, socket: noop })
  t.teardown(() => b.stop(true))
  t.is(b.port, a.port)
}

export function bindFailures(t) {
  t.like(t.throws(() => listen({ hostname: '10.255.255.1', port: 0, socket: noop })), {
    code: 'EADDRNOTAVAIL',
    errno: -99,
    syscall: 'listen',
    message: 'Failed to listen at 10.255.255.1',
  })
  t.like(t.throws(() => listen({ hostname: '[::1]', port: 0, socket: noop })), {
    code: 'ENOTFOUND',
    syscall: 'getaddrinfo',
    message: 'getaddrinfo ENOTFOUND [::1]',
  })
  t.like(t.throws(() => listen({ hostname: 'no-such-host.invalid', port: 0, socket: noop })), {
    code: 'ENOTFOUND',
    syscall: 'getaddrinfo',
  })
}

export async function unixListenerLifecycle(t) {
  const dir = tempDir(t)
  const path = join(dir, 'l.sock')
  const l = listen({ unix: path, socket: noop })
  t.is(l.unix, path)
  t.is(l.port, undefined)
  t.is(l.hostname, undefined)
  t.true(existsSync(path))
  t.like(t.throws(() => listen({ unix: path, socket: noop })), { code: 'EADDRINUSE', syscall: 'listen', errno: -98 })
  l.stop()
  t.false(existsSync(path))
  const file = join(dir, 'regular')
  writeFileSync(file, 'keep me')
  t.like(t.throws(() => listen({ unix: file, socket: noop })), { code: 'EADDRINUSE' })
  t.is(readFileSync(file, 'utf8'), 'keep me')
  t.like(t.throws(() => listen({ unix: join(dir, 'missing', 'x.sock'), socket: noop })), { code: 'ENOENT', errno: -2 })
  t.like(t.throws(() => listen({ unix: join(dir, 'x'.repeat(120)), socket: noop })), { code: 'EINVAL', errno: -22 })
}

export async function abstractUnixName(t) {
  const name = `\0bunnet-${process.pid}-${Math.random()}`
  const l = listen({ unix: name, socket: { data(s, d) { s.write(d) } } })
  t.teardown(() => l.stop(true))
  t.is(l.unix, name)
  const got = []
  const c = await connect({ unix: name, socket: { data(s, d) { got.push(String(d)) } } })
  t.teardown(() => c.end())
  c.write('abc')
  await until(() => got.join('') === 'abc')
}

export async function stopTrueClosesAcceptedSocketsSynchronously(t) {
  const { log, rec } = recorder()
  const opened = deferred()
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => opened.resolve(s), data() {}, close: rec('server close') } })
  const clientLog = []
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: { data() {}, end: () => clientLog.push('end'), close: (s, e) => clientLog.push(`close ${e}`) },
  })
  const s = await opened.promise
  l.stop(true)
  t.deepEqual(log, ['server close'])
  t.is(s.readyState, -1)
  await until(() => clientLog.length === 2)
  t.deepEqual(clientLog, ['end', 'close undefined'])
  t.is(c.readyState, -1)
}

// stop(true) finds its sockets among all of the reactor's (src/reactor.rs conns_of): every one it
// accepted is closed, another listener's are not, and sockets closed before are not reported again.
export async function stopTrueClosesOnlyItsOwnSockets(t) {
  const closed = { a: 0, b: 0 }
  const opened = { a: [], b: [] }
  const make = (k) => listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => void opened[k].push(s), data() {}, close: () => void closed[k]++ } })
  const a = make('a')
  const b = make('b')
  t.teardown(() => b.stop(true))
  const clients = []
  for (let i = 0; i < 3; i++) clients.push(await connect({ hostname: '127.0.0.1', port: a.port, socket: { data() {} } }))
  clients.push(await connect({ hostname: '127.0.0.1', port: b.port, socket: { data() {} } }))
  t.teardown(() => clients.forEach((c) => c.end()))
  await until(() => opened.a.length === 3 && opened.b.length === 1)
  opened.a[0].end()
  await until(() => closed.a === 1)
  a.stop(true)
  t.is(closed.a, 3)
  t.deepEqual(opened.a.map((s) => s.readyState), [-1, -1, -1])
  t.is(closed.b, 0)
  t.is(opened.b[0].readyState, 1)
  t.is(opened.b[0].write('x'), 1)
}

export async function stopFalseKeepsAcceptedSockets(t) {
  const opened = deferred()
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => opened.resolve(s), data(s, d) { s.write(d) } } })
  const got = []
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (s, d) => got.push(String(d)) } })
  t.teardown(() => c.end())
  const s = await opened.promise
  l.stop()
  t.is(s.listener, l)
  c.write('still')
  await until(() => got.join('') === 'still')
  // reload after stop still serves the remaining sockets
  l.reload({ socket: { data(s, d) { s.write(String(d).toUpperCase()) } } })
  c.write('up')
  await until(() => got.join('') === 'stillUP')
  s.end()
  t.throws(() => l.reload({ socket: noop }), { message: 'Expected 1 argument' })
}

export async function listenerReloadReachesCurrentSockets(t) {
  const l = server(t, { data(s, d) { s.write('a') } })
  const got = []
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (s, d) => got.push(String(d)) } })
  t.teardown(() => c.end())
  c.write('x')
  await until(() => got.join('') === 'a')
  t.is(l.reload({ socket: { data(s) { s.write('b') } } }), undefined)
  c.write('x')
  await until(() => got.join('') === 'ab')
  t.throws(() => l.reload(), { message: 'Expected 1 argument' })
  for (const bad of [undefined, null, 'x', 1]) t.throws(() => l.reload(bad), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: 'Expected options object' })
  t.throws(() => l.reload({}), { message: 'Expected "socket" object' })
  t.throws(() => l.reload({ socket: {} }), { code: 'ERR_INVALID_ARG_TYPE', message: 'Expected at least "data" or "drain" callback' })
}

export async function disposeIsStopTrue(t) {
  const closed = []
  const opened = deferred()
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => opened.resolve(s), data() {}, close: () => closed.push('s') } })
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: noop })
  t.teardown(() => c.end())
  await opened.promise
  l[Symbol.dispose]()
  t.deepEqual(closed, ['s'])
}

export async function unixMakesDirectoryRelativePaths(t) {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'sub'))
  const path = join(dir, 'sub', 'a.sock')
  const l = listen({ unix: path, hostname: '127.0.0.1', port: 0, socket: noop })
  t.is(l.unix, path)
  t.is(l.port, undefined)
  l.stop()
}
