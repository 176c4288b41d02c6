// Area 6 — abrupt peers. Each case must end with the Node-shaped error (code/errno/syscall) or
// the orderly close the spec describes, close exactly once, writes returning -1 afterwards, and
// nothing hanging:
//  a) peer RST mid-write: the receiver never reads, the sender reaches backpressure, then the
//     receiver terminate()s (TCP: RST). The sender gets close(ECONNRESET) only (no end/error).
//     Also over a unix socket (no RST there: close with no error, or EPIPE/ECONNRESET).
//  a') the peer resets while our socket is not in backpressure, and we write() before bunnet
//     has read the reset: close(ECONNRESET) is still expected (Node reports ECONNRESET too).
//  b) half-open peer that never reads: it pause()s and shutdown()s; the writer (allowHalfOpen)
//     sees `end`, writes until write() returns 0, then keeps calling write() for 1 s: every call
//     returns 0 promptly, no drain, its own timeout(1) still fires; terminate() then closes it.
//  c) listen.stop(true) with 1,000 active connections: all 1,000 server close handlers run inside
//     stop() (readyState -1, no error); every client sees end then close (no error); new connects
//     are refused. Again over a unix socket (clients see close without end there, spec §5.2).
//  d) a child-process peer killed with SIGKILL mid-transfer, four ways: the child sends to us,
//     the child receives from us, the child is the listener we stream to, and the child stopped
//     reading with our data unread in its buffer (the kernel then resets: ECONNRESET expected).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import {
  check, figure, note, runArea, quick, argValue, connect, listen, sleep, now, waitFor, describe, nodeErrorProblem, exitWithParent,
} from './lib.mjs'

const role = argValue('--role', 'main')
const CHUNK = Buffer.alloc(256 * 1024, 0x61)
const RESET_CODES = ['ECONNRESET', 'EPIPE']

function closeProblem(err, allowUndefined) {
  if (err === undefined) return allowUndefined ? '' : 'close without error'
  return nodeErrorProblem(err, { codes: RESET_CODES })
}

// ---- child roles ---------------------------------------------------------------------------
async function child() {
  exitWithParent()
  const port = Number(argValue('--port', 0))
  const say = (o) => process.stdout.write(JSON.stringify(o) + '\n')
  if (role === 'child-sender' || role === 'child-receiver' || role === 'child-stalled') {
    let sent = 0
    let got = 0
    const pump = (s) => {
      for (;;) {
        const n = s.write(CHUNK)
        if (n <= 0) return
        sent += n
        if (n < CHUNK.length) return
      }
    }
    await connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open(s) {
          if (role === 'child-sender') pump(s)
          // child-receiver: ask the parent to start streaming only now. (If the parent streamed
          // on accept, the bytes could arrive before this client saw its connect complete, and
          // bunnet would never deliver them: see the integrity area's "greeting" check.)
          else s.write('g')
        },
        drain(s) { pump(s) },
        data(s, d) {
          got += d.length
          if (role === 'child-stalled' && got > 1048576) s.pause() // unread data piles up: the kernel resets on kill
        },
      },
    })
    setInterval(() => say({ sent, got }), 20)
  } else if (role === 'child-server') {
    let got = 0
    const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data(s, d) { got += d.length } } })
    say({ port: l.port })
    setInterval(() => say({ got }), 20)
  }
}

function spawnChild(r, port) {
  const c = spawn(process.execPath, [fileURLToPath(import.meta.url), '--role', r, '--port', String(port ?? 0)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const st = { last: null, exit: null, lines: [] }
  createInterface({ input: c.stdout }).on('line', (l) => {
    try {
      st.last = JSON.parse(l)
      st.lines.push(st.last)
    } catch {}
  })
  c.on('exit', (code, sig) => (st.exit = { code, sig }))
  st.child = c
  return st
}

// ---- a) RST mid-write ----------------------------------------------------------------------
async function rstMidWrite(transport, dir) {
  const T = `a) ${transport}`
  let serverSocket = null
  const l = listen({
    ...(transport === 'unix' ? { unix: join(dir, 'rst.sock') } : { hostname: '127.0.0.1', port: 0 }),
    socket: { open(s) { serverSocket = s; s.pause() }, data() {} },
  })
  const ev = { close: 0, closeErr: undefined, end: 0, error: 0, drainAfterClose: 0, writesAfterClose: [] }
  let closed = false
  let taken = 0
  const pump = (s) => {
    for (;;) {
      const n = s.write(CHUNK)
      if (n < 0) return
      taken += n
      if (n < CHUNK.length) return 'short'
    }
  }
  let shortSeen = false
  const c = await connect({
    ...(transport === 'unix' ? { unix: l.unix } : { hostname: '127.0.0.1', port: l.port }),
    socket: {
      open(s) {
        if (pump(s) === 'short') shortSeen = true
      },
      data() {},
      drain(s) {
        if (closed) ev.drainAfterClose++
      },
      end() { ev.end++ },
      error() { ev.error++ },
      close(s, err) {
        closed = true
        ev.close++
        ev.closeErr = err
      },
    },
  })
  await waitFor(() => shortSeen && serverSocket, 3000)
  const wr = c.write(CHUNK) // in backpressure: 0
  serverSocket.terminate()
  // keep poking write() while the reset arrives
  const t0 = now()
  const pokes = []
  while (!closed && now() - t0 < 5000) {
    pokes.push(c.write(CHUNK))
    await sleep(2)
  }
  await sleep(50)
  for (let i = 0; i < 3; i++) ev.writesAfterClose.push(c.write('x'))
  l.stop(true)
  check(`${T}: sender reached backpressure (short write, then write() 0)`, shortSeen && wr === 0, `taken ${taken}, write in backpressure ${wr}`)
  check(`${T}: sender closed within 5 s, close exactly once`, closed && ev.close === 1, `close ${ev.close} after ${(now() - t0).toFixed(0)} ms`)
  if (transport === 'tcp') {
    check(`${T}: close(ECONNRESET) with Node's shape (code, errno -104, syscall)`, ev.closeErr?.code === 'ECONNRESET' && !closeProblem(ev.closeErr, false), `${describe(ev.closeErr)} errno ${ev.closeErr?.errno} syscall ${ev.closeErr?.syscall} ${closeProblem(ev.closeErr, false)}`)
    check(`${T}: only close ran (no end, no error handler)`, ev.end === 0 && ev.error === 0, `end ${ev.end}, error ${ev.error}`)
  } else {
    check(`${T}: close with no error or a Node-shaped EPIPE/ECONNRESET`, !closeProblem(ev.closeErr, true), `${describe(ev.closeErr)} ${closeProblem(ev.closeErr, true)}`)
    check(`${T}: error handler not called`, ev.error === 0, `error ${ev.error}`)
  }
  check(`${T}: write() while the reset arrives returns 0 or -1 (never throws), -1 after close`, pokes.every((n) => n === 0 || n === -1) && ev.writesAfterClose.every((n) => n === -1), `pokes ${[...new Set(pokes)].join(',')}, after close ${ev.writesAfterClose.join(',')}`)
  check(`${T}: no drain after close; readyState -1`, ev.drainAfterClose === 0 && c.readyState === -1, `drains ${ev.drainAfterClose}, readyState ${c.readyState}`)
  figure(`${T}: bytes taken before the reset`, taken)
}

// ---- a') the reset reaches the kernel, then a write() comes before bunnet has read it -------
async function rstThenWrite() {
  const T = "a') reset, then a write() before the reset is read"
  let server = null
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { open(s) { server = s }, data() {} } })
  const ev = { end: 0, error: 0, close: 0, closeErr: undefined }
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      data() {},
      end() { ev.end++ },
      error() { ev.error++ },
      close(s, err) { ev.close++; ev.closeErr = err },
    },
  })
  c.write('x')
  await waitFor(() => server !== null, 2000)
  await sleep(30) // the server has 'x' unread: terminate() resets
  server.terminate() // on loopback the RST is in our kernel before terminate() returns
  const w = c.write('y')
  await waitFor(() => ev.close > 0, 3000)
  l.stop(true)
  check(`${T}: write() returns -1 or 0`, w === -1 || w === 0, `${w}`)
  check(`${T}: close(ECONNRESET) with Node's shape, no end (as without the write)`, ev.close === 1 && ev.end === 0 && !closeProblem(ev.closeErr, false), `close ${ev.close}, end ${ev.end}, error arg ${describe(ev.closeErr)}`)
}

// ---- b) half-open peer that never reads ------------------------------------------------------
async function halfOpenNeverReads(allowHalfOpen) {
  const T = `b) half-open peer, allowHalfOpen ${allowHalfOpen}`
  let serverSocket = null
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { open(s) { serverSocket = s; s.pause(); s.shutdown() }, data() {} } })
  const ev = { end: 0, close: 0, closeErr: undefined, drain: 0, timeout: 0, error: 0 }
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    allowHalfOpen,
    socket: {
      data() {},
      end() { ev.end++ },
      drain() { ev.drain++ },
      timeout() { ev.timeout++ },
      error() { ev.error++ },
      close(s, err) { ev.close++; ev.closeErr = err },
    },
  })
  await waitFor(() => ev.end > 0, 3000)
  if (!allowHalfOpen) {
    await waitFor(() => ev.close > 0, 3000)
    check(`${T}: end then close (no error), writes return -1`, ev.end === 1 && ev.close === 1 && !ev.closeErr && c.write('x') === -1, `end ${ev.end}, close ${ev.close}, err ${describe(ev.closeErr)}`)
    l.stop(true)
    return
  }
  check(`${T}: writer saw end and stays open`, ev.end === 1 && ev.close === 0 && c.readyState === 1, `end ${ev.end}, close ${ev.close}, readyState ${c.readyState}`)
  let taken = 0
  let first0 = -1
  let calls = 0
  for (let i = 0; i < 10000; i++) {
    const n = c.write(CHUNK)
    calls++
    if (n > 0) taken += n
    if (n < CHUNK.length) {
      first0 = n
      break
    }
  }
  c.timeout(1)
  const results = new Map()
  let slowest = 0
  const t0 = now()
  while (now() - t0 < 1300) {
    const t = now()
    const n = c.write(CHUNK)
    slowest = Math.max(slowest, now() - t)
    results.set(n, (results.get(n) ?? 0) + 1)
    await sleep(5)
  }
  await waitFor(() => ev.timeout > 0, 2000)
  check(`${T}: writer reached a short write after ${(taken / 1048576).toFixed(1)} MiB`, first0 >= 0 && first0 < CHUNK.length, `${calls} calls, last ${first0}`)
  check(`${T}: every later write() returned 0 promptly (< 200 ms; never blocks, never -1)`, results.size === 1 && results.has(0) && slowest < 200, `${[...results].map(([k, v]) => `${k}x${v}`).join(' ')}; slowest ${slowest.toFixed(1)} ms`)
  check(`${T}: no drain fired (the peer never reads); timeout(1) still fired`, ev.drain === 0 && ev.timeout === 1, `drain ${ev.drain}, timeout ${ev.timeout}`)
  c.terminate()
  check(`${T}: terminate() closes it synchronously, no error`, ev.close === 1 && !ev.closeErr && c.readyState === -1, `close ${ev.close}, ${describe(ev.closeErr)}`)
  l.stop(true)
  check(`${T}: no error handler call`, ev.error === 0, `${ev.error}`)
}

// ---- c) stop(true) with 1,000 active connections ------------------------------------------
async function stopWithActive(N, transport = 'tcp', dir = null) {
  const T = `c) stop(true) with ${N} active ${transport === 'unix' ? 'unix ' : ''}connections`
  const target = () => (transport === 'unix' ? { unix: l.unix } : { hostname: '127.0.0.1', port: l.port })
  let opened = 0
  let closed = 0
  let closedBad = 0
  let echoed = 0
  const l = listen({
    ...(transport === 'unix' ? { unix: join(dir, 'stop.sock') } : { hostname: '127.0.0.1', port: 0 }),
    socket: {
      open() { opened++ },
      data(s, d) { s.write(d) },
      close(s, err) {
        closed++
        if (err !== undefined || s.readyState !== -1) closedBad++
      },
    },
  })
  const cs = { end: 0, close: 0, closeErr: 0, order: 0, firstErr: null }
  const clients = []
  for (let i = 0; i < N; i += 100) {
    const batch = []
    for (let j = i; j < Math.min(N, i + 100); j++) {
      let sawEnd = false
      batch.push(connect({
        ...target(),
        socket: {
          open(s) { s.write(`hello ${j}`) },
          data(s, d) { if (String(d) === `hello ${j}`) echoed++ },
          end() { sawEnd = true; cs.end++ },
          close(s, err) {
            cs.close++
            if (err) {
              cs.closeErr++
              cs.firstErr ??= err
            }
            if (!sawEnd) cs.order++
          },
        },
      }))
    }
    clients.push(...(await Promise.all(batch)))
  }
  await waitFor(() => echoed === N && opened === N, 5000)
  check(`${T}: all connected and echoing`, echoed === N && opened === N, `opened ${opened}, echoed ${echoed}`)
  const t = now()
  l.stop(true)
  const inside = closed
  const ms = now() - t
  figure(`${T}: stop(true) duration`, +ms.toFixed(1), 'ms')
  check(`${T}: every server close ran synchronously inside stop(true), readyState -1, no error`, inside === N && closedBad === 0, `${inside}/${N} inside, ${closedBad} bad`)
  const all = await waitFor(() => cs.close === N, 10000)
  // unix-domain sockets see no `end` before close (spec §5.2): only close, without error
  if (transport === 'unix') check(`${T}: every client saw close, without error`, all && cs.closeErr === 0, `close ${cs.close}, end ${cs.end}, with error ${cs.closeErr}${cs.firstErr ? ' (' + describe(cs.firstErr) + ')' : ''}`)
  else check(`${T}: every client saw end then close, without error`, all && cs.end === N && cs.order === 0 && cs.closeErr === 0, `close ${cs.close}, end ${cs.end}, close-before-end ${cs.order}, with error ${cs.closeErr}${cs.firstErr ? ' (' + describe(cs.firstErr) + ')' : ''}`)
  let refused = null
  await connect({ ...target(), socket: { data() {} } }).then((s) => s.terminate(), (e) => (refused = e))
  const want = transport === 'unix' ? 'ENOENT' : 'ECONNREFUSED' // stop() unlinks the unix path
  check(`${T}: the stopped listener refuses new connects (${want}, Node-shaped)`, refused?.code === want && !nodeErrorProblem(refused, { syscalls: ['connect'] }), describe(refused))
}

// ---- d) child killed with SIGKILL mid-transfer ---------------------------------------------
async function childKilled(kind) {
  const T = `d) SIGKILL'd child ${kind}`
  const ev = { close: 0, closeErr: undefined, end: 0, error: 0, received: 0, taken: 0, writesAfter: [] }
  let sock = null
  let closed = false
  const pump = (s) => {
    for (;;) {
      const n = s.write(CHUNK)
      if (n <= 0) return
      ev.taken += n
      if (n < CHUNK.length) return
    }
  }
  const handlers = {
    open(s) {
      sock = s
      if (kind === 'listening (we stream to it)') pump(s)
    },
    data(s, d) {
      ev.received += d.length
      if ((kind === 'receiving from us' || kind === 'stalled with unread data') && !ev.started) {
        ev.started = true
        pump(s)
      }
    },
    drain(s) { pump(s) },
    end() { ev.end++ },
    error() { ev.error++ },
    close(s, err) {
      closed = true
      ev.close++
      ev.closeErr = err
    },
  }
  let l = null
  let ch
  if (kind === 'listening (we stream to it)') {
    ch = spawnChild('child-server')
    await waitFor(() => ch.last?.port, 5000)
    await connect({ hostname: '127.0.0.1', port: ch.last.port, socket: handlers })
  } else {
    l = listen({ hostname: '127.0.0.1', port: 0, socket: handlers })
    ch = spawnChild(kind === 'sending to us' ? 'child-sender' : kind === 'stalled with unread data' ? 'child-stalled' : 'child-receiver', l.port)
  }
  // mid-transfer: wait until a few MiB moved
  const moved = () => (kind === 'sending to us' ? ev.received : (ch.last?.got ?? 0))
  const ok = await waitFor(() => moved() > (kind === 'stalled with unread data' ? 1048576 : 4 * 1048576), 10000)
  if (kind === 'stalled with unread data') await sleep(100) // let its receive buffer fill
  ch.child.kill('SIGKILL')
  const t0 = now()
  await waitFor(() => closed, 5000)
  const ms = now() - t0
  for (let i = 0; i < 3; i++) ev.writesAfter.push(sock?.write('x'))
  l?.stop(true)
  await waitFor(() => ch.exit !== null, 3000)
  check(`${T}: transfer was under way when killed`, ok, `moved ${moved()} B`)
  check(`${T}: our socket closed within 5 s, exactly once`, closed && ev.close === 1, `${ev.close} closes after ${ms.toFixed(0)} ms`)
  if (kind === 'stalled with unread data') check(`${T}: the kernel's reset gives close(ECONNRESET/EPIPE) with Node's shape`, !closeProblem(ev.closeErr, false), `${describe(ev.closeErr)} errno ${ev.closeErr?.errno} syscall ${ev.closeErr?.syscall} ${closeProblem(ev.closeErr, false)}`)
  else check(`${T}: close without error (FIN) or with a Node-shaped ECONNRESET/EPIPE`, !closeProblem(ev.closeErr, true), `${describe(ev.closeErr)} errno ${ev.closeErr?.errno} syscall ${ev.closeErr?.syscall} ${closeProblem(ev.closeErr, true)}`)
  check(`${T}: no error handler call; writes after close return -1`, ev.error === 0 && ev.writesAfter.every((n) => n === -1), `error ${ev.error}, writes ${ev.writesAfter.join(',')}`)
  figure(`${T}: how our side closed`, ev.closeErr ? `${ev.closeErr.code} (syscall ${ev.closeErr.syscall})${ev.end ? ' after end' : ''}` : `orderly${ev.end ? ' (end, close)' : ''}`)
  check(`${T}: child died by SIGKILL`, ch.exit?.sig === 'SIGKILL', JSON.stringify(ch.exit))
}

const pem = (n) => readFileSync(new URL(`../__test__/fixtures/tls/${n}`, import.meta.url))

/** e) TLS peers that reset mid-handshake, both ways: each side closes with ECONNRESET and no
 *  handshake call (Bun 1.4.5), never a successful handshake; nothing hangs. */
async function tlsMidHandshake() {
  const net = await import('node:net')
  // e1) a raw TCP peer sends half a ClientHello to a bunnet TLS listener, then resets.
  const seen = []
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: { key: pem('server-key.pem'), cert: pem('server.pem') },
    socket: {
      handshake: (s, ok, err) => seen.push(['handshake', ok, err?.code]),
      data() {},
      close: (s, err) => seen.push(['close', err?.code]),
    },
  })
  const raw = net.connect(l.port, '127.0.0.1', () => {
    raw.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    setTimeout(() => raw.resetAndDestroy(), 20)
  })
  raw.on('error', () => {})
  await waitFor(() => seen.some((e) => e[0] === 'close'), 3000)
  check('e1) client resets mid-ClientHello: server close(ECONNRESET), no handshake call', seen.length === 1 && seen[0][1] === 'ECONNRESET', JSON.stringify(seen))
  l.stop(true)
  // e2) a TCP server accepts a bunnet TLS client and closes without answering the ClientHello.
  const srv = net.createServer((c) => c.once('data', () => c.resetAndDestroy()))
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const cseen = []
  await connect({
    hostname: '127.0.0.1',
    port: srv.address().port,
    tls: { ca: pem('ca.pem'), serverName: 'localhost' },
    socket: {
      handshake: (s, ok, err) => cseen.push(['handshake', ok, err?.code]),
      data() {},
      close: (s, err) => cseen.push(['close', err?.code]),
    },
  }).catch((e) => cseen.push(['rejected', e.code]))
  await waitFor(() => cseen.some((e) => e[0] === 'close' || e[0] === 'rejected'), 3000)
  check('e2) server resets mid-handshake: client close(ECONNRESET), no handshake call', cseen.length === 1 && cseen[0][1] === 'ECONNRESET', JSON.stringify(cseen))
  srv.close()
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'bunnet-abrupt-'))
  try {
    await rstMidWrite('tcp', dir)
    await rstMidWrite('unix', dir)
    await rstThenWrite()
    await halfOpenNeverReads(true)
    await halfOpenNeverReads(false)
    await stopWithActive(1000)
    await stopWithActive(1000, 'unix', dir)
    await childKilled('sending to us')
    await childKilled('receiving from us')
    await childKilled('listening (we stream to it)')
    await childKilled('stalled with unread data')
    await tlsMidHandshake()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (role === 'main') runArea(main)
else child().catch((e) => { console.error(e); process.exit(1) })
