// TLS closes (spec §5.3, §6): end()/close()/shutdown() before the handshake has ended deliver
// what write()/end() took, after it; closes right after the handshake survive the server's
// session tickets; writes after the peer's reset.
import net from 'node:net'

import { connect, deferred, delay, listen, patterned, until } from '../helpers.mjs'
import { collectingTlsServer, handshake, pem, serverTls, tlsServer } from '../tls-fixtures.mjs'

/** A TLS client of `port` logging `data` and `close` (and what `extra` logs) into `log`; resolves at its close. */
async function logUntilClosed(port, log, extra) {
  const closed = deferred()
  await connect({
    hostname: '127.0.0.1',
    port,
    tls: { ca: pem('ca.pem') },
    socket: {
      data: (s, d) => log.push(`data ${d}`),
      close: (s, e) => {
        log.push(`close ${e}`)
        closed.resolve()
      },
      ...extra,
    },
  })
  await closed.promise
}

export async function endBeforeTheHandshakeSendsTheTakenBytesFirst(t) {
  // Bun returns 0 from these writes and drops them; bunnet took them, so it delivers them: the
  // close waits for the handshake, sends the bytes, then close_notify and the FIN. The caller's
  // socket reads as closed at once and takes no more writes.
  const cases = {
    'end(data) in open': (s, out) => out.push(s.end('hello')),
    'write, then end() in open': (s, out) => out.push(s.write('hello'), s.end()),
    'write, then close() in open': (s, out) => {
      out.push(s.write('hello'))
      t.is(s.close(), undefined)
    },
  }
  for (const [name, act] of Object.entries(cases)) {
    const { l, conns } = collectingTlsServer(t)
    const log = []
    const closed = deferred()
    const out = []
    const s = await connect({
      hostname: '127.0.0.1',
      port: l.port,
      tls: { ca: pem('ca.pem') },
      socket: {
        open(s) {
          act(s, out)
          log.push(`readyState ${s.readyState}`, `write ${s.write('more')}`)
        },
        handshake: (s, ok) => log.push(`handshake ${ok} write ${s.write('late')}`),
        data() {},
        close: (s, e) => {
          log.push(`close ${e}`)
          closed.resolve()
        },
      },
    })
    await closed.promise
    await until(() => conns.length === 1)
    t.is(await conns[0].closed.promise, undefined, name)
    t.is(Buffer.concat(conns[0].chunks).toString(), 'hello', name)
    t.is(out.reduce((a, b) => a + b, 0), 5, name)
    t.is(s.bytesWritten, 5, name)
    t.deepEqual(log, ['readyState -1', 'write -1', 'handshake true write -1', 'close undefined'], name)
  }
}

export async function endRightAfterConnectResolvesWaitsForTheHandshake(t) {
  // Without a handshake handler the promise resolves at TCP connect, before the handshake.
  const { l, conns } = collectingTlsServer(t)
  const closed = deferred()
  const s = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    tls: { ca: pem('ca.pem') },
    socket: { data() {}, close: (s, e) => closed.resolve(e) },
  })
  t.is(s.end('after connect'), 13)
  t.is(s.readyState, -1)
  t.is(await closed.promise, undefined)
  await until(() => conns.length === 1)
  await conns[0].closed.promise
  t.is(Buffer.concat(conns[0].chunks).toString(), 'after connect')
}

export async function endOfMoreThanTheSessionBufferInOpenIsAllEncrypted(t) {
  // end(data) takes the whole chunk even beyond the session's 64 KiB buffer; before the session
  // had started (open with a handshake handler) the rest went to the fd as plaintext.
  const secret = Buffer.from('TOP-SECRET-PASSWORD;'.repeat(10000)) // 200,000 bytes
  const connectEnding = (port) =>
    connect({
      hostname: '127.0.0.1',
      port,
      tls: { ca: pem('ca.pem') },
      socket: { open: (s) => t.is(s.end(secret), secret.length), handshake() {}, data() {} },
    })
  // What goes on the wire to a peer that never answers: the ClientHello, nothing else.
  let wire = Buffer.alloc(0)
  const raw = net.createServer((c) => {
    c.on('data', (d) => (wire = Buffer.concat([wire, d])))
    c.on('error', () => {})
  })
  await new Promise((r) => raw.listen(0, '127.0.0.1', r))
  t.teardown(() => raw.close())
  const stuck = await connectEnding(raw.address().port)
  t.teardown(() => stuck.terminate())
  await until(() => wire.length > 0)
  await delay(50)
  t.is(wire[0], 0x16, 'a TLS handshake record first')
  t.is(wire.indexOf('TOP-SECRET'), -1, 'no plaintext on the wire')
  // And to a TLS server: every byte.
  const { l, conns } = collectingTlsServer(t)
  await connectEnding(l.port)
  await until(() => conns.length === 1)
  t.is(await conns[0].closed.promise, undefined)
  t.true(Buffer.concat(conns[0].chunks).equals(secret))
}

export async function endInOpenRightAfterTheHandshakeDeliversEverything(t) {
  // open without a handshake handler runs when the client has the server's Finished; the server
  // sends its TLS 1.3 session tickets only after the client's. The client's close must not let
  // them meet a closed fd: the kernel would answer with a reset and drop what the server had
  // not yet received (~100 KB of this chunk before the fix).
  const secret = patterned(200_000)
  const { l, conns } = collectingTlsServer(t)
  const closed = deferred()
  await connect({
    hostname: '127.0.0.1',
    port: l.port,
    tls: { ca: pem('ca.pem') },
    socket: { open: (s) => t.is(s.end(secret), secret.length), data() {}, close: (s, e) => closed.resolve(e) },
  })
  t.is(await closed.promise, undefined)
  await until(() => conns.length === 1)
  t.is(await conns[0].closed.promise, undefined)
  t.true(Buffer.concat(conns[0].chunks).equals(secret))
}

export async function serverEndInOpenBeforeTheHandshakeReachesTheClient(t) {
  // A TLS listener with a handshake handler runs open before the handshake.
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: serverTls(),
    socket: { open: (s) => t.is(s.end('bye'), 3), handshake() {}, data() {} },
  })
  t.teardown(() => l.stop(true))
  const log = []
  await logUntilClosed(l.port, log, { handshake: (s, ok) => log.push(`handshake ${ok}`), end: () => log.push('end') })
  t.deepEqual(log, ['handshake true', 'data bye', 'end', 'close undefined'])
}

export async function shutdownBeforeTheHandshakeSendsTheTakenBytesThenEnd(t) {
  // shutdown() in open, before the ClientHello: the FIN waits for the handshake and the bytes.
  const tls = await import('node:tls')
  let got = ''
  const ended = deferred()
  const srv = tls.createServer(serverTls(), (sock) => {
    sock.on('data', (d) => (got += d))
    sock.on('end', () => {
      ended.resolve()
      sock.end('reply after end')
    })
    sock.on('error', () => {})
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  const log = []
  const s = await connect({
    hostname: '127.0.0.1',
    port: srv.address().port,
    tls: { ca: pem('ca.pem'), serverName: 'localhost' },
    socket: {
      open(s) {
        log.push(`write ${s.write('early')}`)
        s.shutdown()
        log.push(`readyState ${s.readyState}`, `write ${s.write('x')}`)
      },
      handshake: (s, ok) => log.push(`handshake ${ok}`),
      data: (s, d) => log.push(`data ${d}`),
    },
  })
  t.teardown(() => s.terminate())
  await ended.promise
  t.is(got, 'early')
  await until(() => log.includes('data reply after end'))
  t.deepEqual(log, ['write 5', 'readyState 1', 'write -1', 'handshake true', 'data reply after end'])
}

export async function writeAfterThePeerResetReturnsMinusOne(t) {
  // As on plain sockets: once a send has met the peer's reset, the session's taking of bytes
  // does not count as written (they can never be delivered), and the close reports the reset.
  const opened = deferred()
  const { l } = tlsServer(t, serverTls(), { open: (s) => opened.resolve(s), handshake: (s) => opened.resolve(s) })
  const closed = deferred()
  const { s } = await handshake(t, l.port, { ca: pem('ca.pem') }, { close: (s, e) => closed.resolve(e) })
  t.is(s.write('ok'), 2)
  ;(await opened.promise).terminate()
  t.is(s.write('y'), -1)
  t.is(s.write('z'), -1)
  t.is(s.bytesWritten, 2)
  t.like(await closed.promise, { code: 'ECONNRESET', errno: -104, syscall: 'read' })
}

export async function afterItsOwnShutdownATlsSocketStillGetsEnd(t) {
  // Bun runs `end` (readyState 1) then `close` when the peer finishes after this side's
  // shutdown() on TLS sockets; plain sockets go straight to `close` (spec §5.2).
  const l = listen({ hostname: '127.0.0.1', port: 0, tls: serverTls(), socket: { data() {}, end: (s) => s.end('bye') } })
  t.teardown(() => l.stop(true))
  const log = []
  await logUntilClosed(l.port, log, {
    handshake(s) {
      s.write('hi')
      s.shutdown()
    },
    end: (s) => log.push(`end ${s.readyState}`),
  })
  t.deepEqual(log, ['data bye', 'end 1', 'close undefined'])
}

export async function aClosedTlsSocketAnswersAsBunsDeadOnes(t) {
  // The session is gone after the close: Bun's members answer inert values (authorized stays).
  const l = listen({ hostname: '127.0.0.1', port: 0, tls: { ...serverTls(), ALPNProtocols: '\x08http/1.1' }, socket: { data() {} } })
  t.teardown(() => l.stop(true))
  const closed = deferred()
  let sock
  await connect({
    hostname: 'localhost',
    port: l.port,
    tls: { ca: pem('ca.pem'), ALPNProtocols: '\x08http/1.1' },
    socket: {
      handshake(s) {
        sock = s
        t.is(s.alpnProtocol, 'http/1.1')
        t.is(s.getTLSVersion(), 'TLSv1.3')
        s.end()
      },
      data() {},
      close: () => closed.resolve(),
    },
  })
  await closed.promise
  const s = sock
  t.deepEqual(
    [s.authorized, s.alpnProtocol, s.getPeerCertificate(), s.getCipher(), s.getTLSVersion(), s.getEphemeralKeyInfo(), s.getSharedSigalgs()],
    [true, false, undefined, undefined, null, null, null],
  )
  t.deepEqual([s.getServername(), s.exportKeyingMaterial(8, 'x'), s.setMaxSendFragment(1024), s.setServername('a'), s.isSessionReused()], [
    undefined,
    undefined,
    false,
    undefined,
    false,
  ])
}

export async function stopTrueEndsHandshakesInProgressAsFailedHandshakes(t) {
  // A peer that never sends its ClientHello: stop(true) reports the socket the way a failed
  // handshake is reported (Bun): `open` then `close` without a handshake handler,
  // `handshake(false, ECONNRESET)` then `close` with one; all inside stop().
  for (const withHandshake of [false, true]) {
    const ev = []
    const l = listen({
      hostname: '127.0.0.1',
      port: 0,
      tls: serverTls(),
      socket: {
        ...(withHandshake ? { handshake: (s, ok, e) => ev.push(`handshake ${ok} ${e?.code}`) } : {}),
        open: () => ev.push('open'),
        data() {},
        close: (s, e) => ev.push(`close ${e}`),
      },
    })
    const raw = net.connect(l.port, '127.0.0.1')
    raw.on('error', () => {})
    t.teardown(() => raw.destroy())
    await new Promise((r) => raw.on('connect', r))
    await until(() => !withHandshake || ev.includes('open'))
    await delay(50)
    ev.push('stop')
    l.stop(true)
    ev.push('after')
    const expected = withHandshake ? ['open', 'stop', 'handshake false ECONNRESET', 'close undefined', 'after'] : ['stop', 'open', 'close undefined', 'after']
    t.deepEqual(ev, expected, `handshake handler: ${withHandshake}`)
  }
}
