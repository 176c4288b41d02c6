// connect(): transports, resolution, order of open vs. promise, and failure delivery (spec §2).
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'

import { connect, deferred, echoServer, listen, recorder, server, tempDir, until } from '../helpers.mjs'

async function roundTrip(t, s, got) {
  t.is(s.write('ping'), 4)
  await until(() => got.join('') === 'ping', 5000, 'echo')
}

export async function tcpIPv4OpenRunsBeforeResolve(t) {
  const l = echoServer(t)
  const order = []
  const got = []
  const p = connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      open(s) {
        order.push(`open rs=${s.readyState}`)
        t.is(this, s)
      },
      data(s, d) {
        got.push(String(d))
      },
    },
  })
  t.true(p instanceof Promise)
  p.then(() => order.push('resolved'))
  const s = await p
  t.teardown(() => s.end())
  t.deepEqual(order, ['open rs=1', 'resolved'])
  t.is(s.readyState, 1)
  t.is(s.remoteAddress, '127.0.0.1')
  t.is(s.remotePort, l.port)
  t.is(s.remoteFamily, 'IPv4')
  t.is(s.localAddress, '127.0.0.1')
  t.true(s.localPort > 0)
  t.is(s.localFamily, 'IPv4')
  t.is(s.listener, undefined)
  await roundTrip(t, s, got)
}

export async function tcpIPv6AndBrackets(t) {
  const l = listen({ hostname: '::1', port: 0, socket: { data(s, d) { s.write(d) } } })
  t.teardown(() => l.stop(true))
  for (const hostname of ['::1', '[::1]']) {
    const got = []
    const s = await connect({ hostname, port: l.port, socket: { data(s, d) { got.push(String(d)) } } })
    t.is(s.remoteAddress, '::1')
    t.is(s.remoteFamily, 'IPv6')
    await roundTrip(t, s, got)
    s.end()
  }
}

export async function unspecifiedAddressReachesLoopback(t) {
  // connect to 0.0.0.0 / :: reaches this host's loopback: remoteAddress says so, as in Bun
  // (it echoed the unspecified address before).
  for (const [listenOn, target, peer] of [['0.0.0.0', '0.0.0.0', '127.0.0.1'], ['::', '::', '::1']]) {
    const l = listen({ hostname: listenOn, port: 0, socket: { data() {} } })
    t.teardown(() => l.stop(true))
    const s = await connect({ hostname: target, port: l.port, socket: { data() {} } })
    t.is(s.remoteAddress, peer)
    t.is(s.remotePort, l.port)
    t.is(s.localAddress, peer)
    s.end()
  }
}

export async function localhostIsResolvedOffThread(t) {
  const l = listen({ hostname: '::', port: 0, socket: { data(s, d) { s.write(d) } } })
  t.teardown(() => l.stop(true))
  const got = []
  const s = await connect({ hostname: 'localhost', port: String(l.port), socket: { data(s, d) { got.push(String(d)) } } })
  t.teardown(() => s.end())
  t.true(['127.0.0.1', '::1'].includes(s.remoteAddress))
  await roundTrip(t, s, got)
}

export async function unixPath(t) {
  const path = join(tempDir(t), 's.sock')
  const l = listen({ unix: path, socket: { data(s, d) { s.write(d) } } })
  t.teardown(() => l.stop(true))
  const got = []
  const s = await connect({ unix: path, hostname: 'ignored.invalid', port: 1, socket: { data(s, d) { got.push(String(d)) } } })
  t.teardown(() => s.end())
  for (const k of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort', 'localFamily']) {
    t.is(s[k], undefined, k)
  }
  t.true(s.setNoDelay())
  t.true(s.setKeepAlive(true))
  // as Bun answers: a delay of a second or more asks for a TCP idle time unix sockets lack
  t.true(s.setKeepAlive(true, 999))
  t.false(s.setKeepAlive(true, 1000))
  t.true(s.setKeepAlive(false, 1000))
  await roundTrip(t, s, got)
}

export async function dataOptionAndThis(t) {
  const l = echoServer(t)
  const d = { id: 7 }
  let seenThis
  const s = await connect({ hostname: '127.0.0.1', port: l.port, data: d, socket: { open(s) { seenThis = this }, data() {} } })
  t.teardown(() => s.end())
  t.is(s.data, d)
  t.is(seenThis, s)
  s.data = 5
  t.is(s.data, 5)
}

export async function optionsAndHandlersAreReadOnceEach(t) {
  // connect() reads its options and the handler object once per call, whichever way it reads
  // them; proxies count every read. The socket works with what was read.
  const l = echoServer(t)
  const reads = {}
  const counted = (name, target) =>
    new Proxy(target, {
      get(o, k, r) {
        if (typeof k === 'string') reads[`${name}.${k}`] = (reads[`${name}.${k}`] ?? 0) + 1
        return Reflect.get(o, k, r)
      },
    })
  const got = []
  const handlers = counted('socket', { data: (s, d) => got.push(String(d)), binaryType: 'buffer' })
  const s = await connect(counted('options', { hostname: '127.0.0.1', port: l.port, data: 1, socket: handlers }))
  t.teardown(() => s.end())
  const twice = Object.entries(reads).filter(([, n]) => n > 1)
  t.deepEqual(twice, [])
  for (const k of ['options.socket', 'options.hostname', 'options.port', 'options.data', 'socket.data', 'socket.binaryType']) t.is(reads[k], 1, k)
  await roundTrip(t, s, got)
}

function refusedPort(t) {
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = l.port
  l.stop()
  return port
}

export async function refusedGoesToConnectErrorThenRejects(t) {
  const port = refusedPort(t)
  const seen = deferred()
  const calls = []
  const p = connect({
    hostname: '127.0.0.1',
    port,
    data: 'd',
    socket: {
      data() {},
      open() { calls.push('open') },
      close() { calls.push('close') },
      error() { calls.push('error') },
      connectError(s, err) {
        calls.push('connectError')
        t.is(this, s)
        t.is(s.readyState, -1)
        t.is(s.data, 'd')
        seen.resolve(err)
      },
    },
  })
  const err = await t.throwsAsync(p, { instanceOf: Error, code: 'ECONNREFUSED' })
  const first = await seen.promise
  t.not(err, first)
  for (const e of [err, first]) {
    t.like(e, { name: 'Error', message: 'Failed to connect', code: 'ECONNREFUSED', errno: -111, syscall: 'connect' })
    t.deepEqual(Object.keys(e).sort(), ['code', 'errno', 'syscall'])
  }
  t.deepEqual(calls, ['connectError'])
}

export async function refusedWithoutHandlerRejects(t) {
  const port = refusedPort(t)
  await t.throwsAsync(connect({ hostname: '127.0.0.1', port, socket: { data() {}, close() { t.fail('close') } } }), {
    code: 'ECONNREFUSED',
    message: 'Failed to connect',
  })
}

export async function connectErrorThrowReplacesRejection(t) {
  const port = refusedPort(t)
  const x = new Error('mine')
  const err = await t.throwsAsync(
    connect({ hostname: '127.0.0.1', port, socket: { data() {}, connectError() { throw x } } }),
  )
  t.is(err, x)
}

export async function unixMissingPathIsENOENT(t) {
  const path = join(tempDir(t), 'missing.sock')
  await t.throwsAsync(connect({ unix: path, socket: { data() {} } }), { code: 'ENOENT', message: 'Failed to connect' })
  const file = join(tempDir(t), 'regular')
  writeFileSync(file, 'x')
  await t.throwsAsync(connect({ unix: file, socket: { data() {} } }), { code: 'ECONNREFUSED' })
}

export async function unresolvableNameIsENOTFOUND(t) {
  const err = await t.throwsAsync(connect({ hostname: 'no-such-host.invalid', port: 80, socket: { data() {} } }), {
    code: 'ENOTFOUND',
  })
  t.like(err, { syscall: 'getaddrinfo', errno: -3008, message: 'getaddrinfo ENOTFOUND no-such-host.invalid' })
}

export async function failureIsNeverSynchronous(t) {
  const { log, rec } = recorder()
  const p = connect({ unix: '/nonexistent/x.sock', socket: { data() {}, connectError: rec('connectError') } })
  t.deepEqual(log, [])
  await p.catch(() => {})
  t.deepEqual(log, ['connectError'])
}

export async function serverSocketSeesListenerAndData(t) {
  const opened = deferred()
  const l = server(t, {
    open(s) { opened.resolve(s) },
    data() {},
  }, { data: { tag: 'L' } })
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() {} } })
  t.teardown(() => c.end())
  const s = await opened.promise
  t.is(s.listener, l)
  t.is(s.data, l.data)
  t.is(s.localPort, l.port)
  t.is(s.remotePort, c.localPort)
}

export async function dataArrivingWithTheConnectIsDelivered(t) {
  // Found by the stress suite: a greeting that arrives before the reactor sees the connect
  // complete rides on the same (edge-triggered) readiness and must not be lost.
  const l = server(t, { open: (s) => s.write('greeting'), data() {} })
  const got = deferred()
  const p = connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (s, d) => got.resolve(String(d)) } })
  const busyUntil = Date.now() + 200
  while (Date.now() < busyUntil) {
    // keep the JS thread busy so connect completion and data are seen in one wake-up
  }
  const s = await p
  t.teardown(() => s.end())
  t.is(await Promise.race([got.promise, new Promise((r) => setTimeout(() => r('lost'), 2000))]), 'greeting')
}

export async function unixListenerWithAFullQueueRefuses(t) {
  // A non-blocking unix connect to a listener whose accept queue is full fails with EAGAIN from
  // the kernel; Bun reports ECONNREFUSED (EAGAIN would read as "try again").
  const path = join(tempDir(t), 'full.sock')
  const srv = net.createServer()
  await new Promise((r) => srv.listen({ path, backlog: 1 }, r))
  t.teardown(() => srv.close())
  const codes = []
  const attempts = []
  // All in one turn of the event loop: node:net does not accept in between.
  for (let i = 0; i < 6; i++) {
    attempts.push(connect({ unix: path, socket: { data() {}, connectError: (s, e) => codes.push(e.code) } }).then((s) => s.terminate(), () => {}))
  }
  await Promise.all(attempts)
  t.true(codes.length > 0, 'some connect was refused')
  t.deepEqual([...new Set(codes)], ['ECONNREFUSED'])
}

// Successive connects to the same hostname and port reuse the previous call's parsed target;
// whatever comes in between (another address, a refused port, a call refused before its target
// was read, an invalid port) must still send each call where its own options say.
export async function repeatedTargetsGoWhereEachCallSays(t) {
  const a = echoServer(t)
  const b = echoServer(t)
  const handlers = { data() {} }
  const port = async (opts) => {
    const s = await connect({ socket: handlers, ...opts })
    const p = s.remotePort
    s.end()
    return p
  }
  const to = (l) => ({ hostname: '127.0.0.1', port: l.port })
  t.is(await port(to(a)), a.port)
  t.is(await port(to(a)), a.port)
  t.is(await port(to(b)), b.port)
  t.is(await port(to(a)), a.port)
  // Refused by binaryType, which is checked before the target: the next call to b goes to b.
  t.throws(() => connect({ ...to(b), socket: { data() {}, binaryType: 'blob' } }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.is(await port(to(b)), b.port)
  t.throws(() => connect({ hostname: '127.0.0.1', port: 70000, socket: handlers }), { instanceOf: RangeError })
  t.throws(() => connect({ hostname: '127.0.0.1', port: 70000, socket: handlers }), { instanceOf: RangeError })
  t.is(await port({ ...to(a), port: String(a.port) }), a.port)
  t.is(await port(to(b)), b.port)
  // A unix path in between, then the same TCP target again.
  const dir = tempDir(t)
  const u = listen({ unix: join(dir, 's.sock'), socket: { data() {} } })
  t.teardown(() => u.stop(true))
  const us = await connect({ unix: join(dir, 's.sock'), socket: handlers })
  us.end()
  t.is(await port(to(b)), b.port)
  // A port nothing listens on, twice: refused both times.
  const gone = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const dead = gone.port
  gone.stop(true)
  for (let i = 0; i < 2; i++) {
    const err = await connect({ hostname: '127.0.0.1', port: dead, socket: handlers }).catch((e) => e)
    t.is(err.code, 'ECONNREFUSED')
  }
  t.is(await port(to(a)), a.port)
}

export async function repeatedUnixPathsGoWhereEachCallSays(t) {
  // connect() keeps the last target it parsed for a call with the same `unix` string: each call
  // must still reach the server its own path names.
  const dir = tempDir(t)
  const named = (name) => {
    const l = listen({ unix: join(dir, `${name}.sock`), socket: { open: (s) => s.end(name), data() {} } })
    t.teardown(() => l.stop(true))
    return join(dir, `${name}.sock`)
  }
  const [x, y] = [named('x'), named('y')]
  const tcp = echoServer(t)
  const reached = (opts) =>
    new Promise((resolve, reject) => {
      connect({ ...opts, socket: { data: (s, d) => resolve(String(d)), connectError: (s, e) => reject(e) } }).catch(reject)
    })
  t.is(await reached({ unix: x }), 'x')
  t.is(await reached({ unix: x }), 'x')
  t.is(await reached({ unix: y }), 'y')
  t.is(await reached({ unix: x }), 'x')
  const s = await connect({ hostname: '127.0.0.1', port: tcp.port, socket: { data() {} } })
  t.is(s.remotePort, tcp.port)
  s.end()
  t.is(await reached({ unix: x }), 'x')
  for (let i = 0; i < 2; i++) {
    const err = await reached({ unix: join(dir, 'none.sock') }).catch((e) => e)
    t.is(err.code, 'ENOENT')
  }
  t.is(await reached({ unix: y }), 'y')
}
