// Area 5 — integrity: TOTAL bytes (full 1 GiB, quick 128 MiB) client -> server, plus TOTAL/8
// server -> client at the same time, over TCP, over a unix socket (temp dir) and over TLS. The senders use
// random partial writes: random chunk sizes (1 B .. 4 MiB) taken at random positions of a random
// pool, expressed as subarrays, (buffer, byteOffset, byteLength), DataViews, ArrayBuffers with
// offsets, SharedArrayBuffer copies and ASCII strings with offsets; they hash exactly the bytes
// each write() reports as taken, continue with a fresh random slice after `drain`, and probe that
// a write right after a short write returns 0. The readers use a random binaryType and pause()
// themselves at random for 0-20 ms. sha256 and byte counts must match on both sides; also
// bytesWritten equals the sum of what write() returned, and no data arrives while paused. The
// last 8 MiB go out through end(data), which must report and deliver all of it.
// Last, a server that speaks first (another process greeting on accept) must be heard by a
// bunnet client, also when the greeting lands before bunnet has seen its connect complete.
// The same transfer also runs on 16 TCP connections at once (TOTAL/16 each).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  check, figure, note, runArea, quick, argValue, connect, listen, sleep, now, waitFor, sha256, prng, seedFromArgs, MiB, describe, EXIT_WITH_PARENT_JS,
} from './lib.mjs'

const pem = (n) => readFileSync(new URL(`../__test__/fixtures/tls/${n}`, import.meta.url))
/** Listen/connect targets per transport ('tls' is TCP with TLS, certificates from the test fixtures). */
const listenTarget = (transport, dir, sockName = 'integrity.sock') =>
  transport === 'unix'
    ? { unix: join(dir, sockName) }
    : { hostname: '127.0.0.1', port: 0, ...(transport === 'tls' ? { tls: { key: pem('server-key.pem'), cert: pem('server.pem') } } : {}) }
const connectTarget = (transport, l) =>
  transport === 'unix'
    ? { unix: l.unix }
    : { hostname: '127.0.0.1', port: l.port, ...(transport === 'tls' ? { tls: { ca: pem('ca.pem'), serverName: 'localhost' } } : {}) }

const TOTAL = Number(argValue('--bytes', quick ? 128 * MiB : 1024 * MiB))
const REVERSE = Math.floor(TOTAL / 8)
const POOL = randomBytes(32 * MiB)
const ASCII = Buffer.from(POOL.subarray(0, 1 * MiB).map((b) => 0x20 + (b % 95))).toString('latin1')

function makeSender(R, total, label) {
  const st = {
    label, total, taken: 0, hash: sha256(), writes: 0, shortWrites: 0, zeroAfterShortViolations: 0, drains: 0, done: false,
    negative: 0, kinds: {},
  }
  function randomLen() {
    const r = R.next()
    if (r < 0.3) return R.int(1, 100)
    if (r < 0.7) return R.int(101, 65536)
    if (r < 0.95) return R.int(65537, 1024 * 1024)
    return R.int(1024 * 1024, 4 * 1024 * 1024)
  }
  /** One write of a random slice; returns the count write() reported. */
  function writeOne(s) {
    const len = Math.min(randomLen(), st.total - st.taken)
    const a = R.int(0, POOL.length - len)
    const bytes = POOL.subarray(a, a + len) // the bytes we intend to send
    const kind = R.int(0, 6)
    let n
    switch (kind) {
      case 0: n = s.write(bytes); break
      case 1: n = s.write(POOL, a, len); break
      case 2: {
        const pre = R.int(0, Math.min(a, 1000))
        n = s.write(new DataView(POOL.buffer, POOL.byteOffset + a - pre, len + pre), pre, len)
        break
      }
      case 3: {
        // an ArrayBuffer (copy) with slack on both sides, written with offset/length
        const pre = R.int(0, 64)
        const ab = new ArrayBuffer(len + pre + R.int(0, 64))
        new Uint8Array(ab).set(bytes, pre)
        n = s.write(ab, pre, len)
        break
      }
      case 4: {
        const sab = new SharedArrayBuffer(len)
        new Uint8Array(sab).set(bytes)
        n = s.write(R.chance(0.5) ? sab : new Uint8Array(sab))
        break
      }
      case 5: {
        // ASCII string with offset/length: UTF-8 bytes = the chars
        const l2 = Math.min(len, ASCII.length - 1)
        const o = R.int(0, ASCII.length - l2)
        const str = ASCII.slice(0, o + l2 + R.int(0, 10))
        n = s.write(str, o, l2)
        if (n > 0) st.hash.update(ASCII.slice(o, o + n), 'latin1')
        st.kinds[kind] = (st.kinds[kind] ?? 0) + 1
        return { n, len: l2 }
      }
      default: {
        // a Uint16Array view over the pool region (even-aligned), bytes written via offsets in bytes
        const start = a & ~1
        const l = (a - start + len + 1) & ~1
        if (start + l > POOL.length) { n = s.write(bytes); break }
        const u16 = new Uint16Array(POOL.buffer, POOL.byteOffset + start, l / 2)
        n = s.write(u16, a - start, len)
        break
      }
    }
    st.kinds[kind] = (st.kinds[kind] ?? 0) + 1
    if (n > 0) st.hash.update(bytes.subarray(0, n))
    return { n, len }
  }
  st.pump = (s) => {
    if (st.aborted) return // the transfer timed out: late drains must not write any more
    while (st.taken < st.total) {
      const { n, len } = writeOne(s)
      st.writes++
      if (n < 0) {
        st.negative++
        return
      }
      st.taken += n
      if (n < len) {
        st.shortWrites++
        // Bun's contract: until drain, further writes take nothing
        const probe = s.write(POOL.subarray(0, 16))
        if (probe !== 0) {
          st.zeroAfterShortViolations++
          if (probe > 0) {
            st.hash.update(POOL.subarray(0, probe))
            st.taken += probe
          }
        }
        return
      }
    }
    st.done = true
    st.onDone?.()
  }
  return st
}

function makeReader(R, label) {
  const st = { label, received: 0, hash: sha256(), paused: false, pauses: 0, dataWhilePaused: 0, events: 0, wrongType: 0 }
  st.onData = (s, d, binaryType) => {
    st.events++
    if (st.paused) st.dataWhilePaused++
    const okType = binaryType === 'arraybuffer' ? d instanceof ArrayBuffer : binaryType === 'uint8array' ? d instanceof Uint8Array && !Buffer.isBuffer(d) : Buffer.isBuffer(d)
    if (!okType) st.wrongType++
    const u8 = d instanceof ArrayBuffer ? new Uint8Array(d) : d
    st.received += u8.length
    st.hash.update(u8)
    if (R.chance(0.02)) {
      st.paused = true
      st.pauses++
      s.pause()
      setTimeout(() => {
        st.paused = false
        if (s.readyState === 1) s.resume()
      }, R.int(0, 20))
    }
  }
  return st
}

async function transfer(transport, R, dir, { total = TOTAL, label = transport, sockName = 'integrity.sock', out = { check, figure } } = {}) {
  const TOTAL_ = total
  const REVERSE_ = Math.floor(total / 8)
  const FINAL = Math.min(8 * MiB, Math.floor(total / 4))
  const binS = R.pick(['buffer', 'arraybuffer', 'uint8array'])
  const binC = R.pick(['buffer', 'arraybuffer', 'uint8array'])
  // the last FINAL bytes go out through end(data) (bunnet flushes what the kernel does not take
  // at once before the FIN): end() must report them all and the server must get them all
  const finalAt = R.int(0, POOL.length - FINAL)
  const finalChunk = POOL.subarray(finalAt, finalAt + FINAL)
  let endReturned
  const up = makeSender(R, TOTAL_ - FINAL, 'client->server')
  const down = makeSender(R, REVERSE_, 'server->client')
  const upR = makeReader(R, 'server')
  const downR = makeReader(R, 'client')
  let serverClosed = false
  let serverCloseErr
  let clientClosed = false
  let clientCloseErr
  let serverSocket = null
  let serverBytesWritten = 0
  const l = listen({
    ...listenTarget(transport, dir, sockName),
    socket: {
      binaryType: binS,
      open(s) {
        serverSocket = s
        down.pump(s)
      },
      data(s, d) { upR.onData(s, d, binS) },
      drain(s) {
        down.drains++
        down.pump(s)
      },
      close(s, err) {
        serverBytesWritten = s.bytesWritten
        serverClosed = true
        serverCloseErr = err
      },
    },
  })
  const t0 = now()
  let clientBytesWritten = 0
  let ended = false
  const maybeEnd = (s) => {
    if (!ended && up.done && downR.received >= REVERSE_) {
      ended = true
      endReturned = s.end(finalChunk)
      if (endReturned > 0) {
        up.hash.update(finalChunk.subarray(0, endReturned))
        up.taken += endReturned
      }
      clientBytesWritten = s.bytesWritten
    }
  }
  up.onDone = () => client && maybeEnd(client)
  let client = null
  client = await connect({
    ...connectTarget(transport, l),
    socket: {
      binaryType: binC,
      open(s) {
        client = s
        up.pump(s)
      },
      data(s, d) {
        downR.onData(s, d, binC)
        maybeEnd(s)
      },
      drain(s) {
        up.drains++
        up.pump(s)
      },
      close(s, err) {
        clientClosed = true
        clientCloseErr = err
      },
    },
  })
  maybeEnd(client)
  const budget = Math.max(60000, (TOTAL_ / MiB) * 400)
  // done, or stalled: nothing moved for 5 s (a missing drain is a hang, not a slow run)
  let lastProgress = -1
  let lastChange = now()
  let stalled = false
  const finished = await waitFor(() => {
    if (serverClosed && clientClosed) return true
    const p = up.taken + down.taken + upR.received + downR.received
    if (p !== lastProgress) {
      lastProgress = p
      lastChange = now()
    } else if (now() - lastChange > 5000) return (stalled = true)
    return false
  }, budget) && !stalled
  const secs = (now() - t0) / 1000
  up.aborted = down.aborted = true
  if (!finished) client?.terminate()
  l.stop(true)
  const T = label.toUpperCase()
  const { check, figure } = out
  figure(`${T}: binaryType server/client`, `${binS}/${binC}`)
  figure(`${T}: throughput client->server (incl. hashing both ends)`, +((up.taken / MiB) / secs).toFixed(0), 'MiB/s')
  figure(`${T}: writes / short writes / drains (client->server)`, `${up.writes} / ${up.shortWrites} / ${up.drains}`)
  figure(`${T}: reader pauses (server / client)`, `${upR.pauses} / ${downR.pauses}`)
  check(`${label}: transfer finished and both sides closed`, finished, `${stalled ? 'STALLED (no progress for 5 s) after ' : ''}${secs.toFixed(1)} s; client->server short writes ${up.shortWrites}, drains ${up.drains}; client->server taken ${up.taken}/${TOTAL_}, received ${upR.received}; server->client taken ${down.taken}/${REVERSE_}, received ${downR.received}`)
  const hu = up.hash.digest('hex')
  const hur = upR.hash.digest('hex')
  const hd = down.hash.digest('hex')
  const hdr = downR.hash.digest('hex')
  if (!finished) {
    // what did move must still be intact; the checks that need a finished transfer are skipped
    check(`${label}: the bytes moved before the transfer stopped are intact (sha256, counts)`, up.taken === upR.received && hu === hur && down.taken === downR.received && hd === hdr, `client->server ${up.taken}/${upR.received}, server->client ${down.taken}/${downR.received}`)
    check(`${label}: one drain per short write (none spurious, none missing)`, up.drains === up.shortWrites && down.drains === down.shortWrites, `client->server ${up.drains}/${up.shortWrites}, server->client ${down.drains}/${down.shortWrites}`)
    note(`${label}: transfer did not finish; end()/bytesWritten/close checks skipped`)
    return
  }
  check(`${label}: client->server ${+(TOTAL_ / MiB).toFixed(1)} MiB: sha256 and byte count equal`, up.taken === TOTAL_ && upR.received === TOTAL_ && hu === hur, `${hu.slice(0, 16)} vs ${hur.slice(0, 16)}, ${up.taken}/${upR.received}`)
  check(`${label}: server->client ${+(REVERSE_ / MiB).toFixed(1)} MiB: sha256 and byte count equal`, down.taken === REVERSE_ && downR.received === REVERSE_ && hd === hdr, `${hd.slice(0, 16)} vs ${hdr.slice(0, 16)}, ${down.taken}/${downR.received}`)
  check(`${label}: end(${+(FINAL / MiB).toFixed(1)} MiB) as the last write returned the whole length`, endReturned === FINAL, `${endReturned}`)
  check(`${label}: a write right after a short write returned 0 (until drain)`, up.zeroAfterShortViolations === 0 && down.zeroAfterShortViolations === 0, `${up.zeroAfterShortViolations + down.zeroAfterShortViolations} violations in ${up.shortWrites + down.shortWrites} short writes`)
  check(`${label}: write() never returned -1 during the transfer`, up.negative === 0 && down.negative === 0, `${up.negative + down.negative}`)
  check(`${label}: bytesWritten equals the sum of write() results`, clientBytesWritten === up.taken && serverBytesWritten === down.taken, `client ${clientBytesWritten}/${up.taken}, server ${serverBytesWritten}/${down.taken}`)
  check(`${label}: no data delivered while paused; data has the binaryType's class`, upR.dataWhilePaused + downR.dataWhilePaused === 0 && upR.wrongType + downR.wrongType === 0, `while paused ${upR.dataWhilePaused + downR.dataWhilePaused}, wrong class ${upR.wrongType + downR.wrongType}`)
  check(`${label}: orderly close on both sides (no error)`, !serverCloseErr && !clientCloseErr, `${describe(serverCloseErr)} / ${describe(clientCloseErr)}`)
  check(`${label}: backpressure was exercised (short writes and drains)`, up.shortWrites > 0 && up.drains > 0, `${up.shortWrites} short writes, ${up.drains} drains`)
  check(`${label}: one drain per short write (none spurious, none missing)`, up.drains === up.shortWrites && down.drains === down.shortWrites, `client->server ${up.drains}/${up.shortWrites}, server->client ${down.drains}/${down.shortWrites}`)
}

// PAR connections at once over TCP, TOTAL/PAR bytes each (plus the reverse eighth), all with
// the same random partial writes and pauses; checks are aggregated over the connections.
async function parallel(PAR, R, dir) {
  const agg = new Map()
  const figs = new Map()
  const out = {
    check(name, ok, detail) {
      const key = name.replace(/^par\d+: /, '')
      const a = agg.get(key) ?? { ok: 0, n: 0, bad: [] }
      a.n++
      if (ok) a.ok++
      else a.bad.push(`${name.match(/^par\d+/)[0]}: ${detail}`)
      agg.set(key, a)
    },
    figure(name, value) {
      const key = name.replace(/^PAR\d+: /, '')
      if (!figs.has(key)) figs.set(key, [])
      figs.get(key).push(value)
    },
  }
  const t0 = now()
  await Promise.all(Array.from({ length: PAR }, (_, i) => transfer('tcp', prng(R.int(0, 2 ** 31)), dir, { total: Math.floor(TOTAL / PAR), label: `par${i}`, out })))
  const secs = (now() - t0) / 1000
  figure(`PARALLEL: ${PAR} TCP connections at once, aggregate client->server`, +((TOTAL / MiB) / secs).toFixed(0), 'MiB/s')
  for (const [key, a] of agg) {
    // small per-connection volumes need not each reach backpressure: at least one must
    if (key.startsWith('backpressure') && TOTAL / PAR < 4 * MiB) continue // too little per connection to insist
    if (key.startsWith('backpressure')) check(`parallel x${PAR}: ${key} (on at least one connection)`, a.ok >= 1, `${a.ok}/${a.n}`)
    else check(`parallel x${PAR}: ${key} (all connections)`, a.ok === a.n, a.ok === a.n ? `${a.n}/${a.n}` : a.bad.slice(0, 3).join(' | '))
  }
}

// A server that speaks first (greeting on accept, like SMTP/FTP/SSH), in another process.
// The greeting can reach the client before bunnet's reactor has seen the connect complete; it
// must still be delivered. Run naturally (20 connects) and forced (the client's JS thread is
// busy for 200 ms right after connect(), so both happen before the reactor polls).
async function greeting(transport, dir) {
  const path = join(dir, `greet-${transport}.sock`)
  const srv = spawn(process.execPath, ['-e', `${EXIT_WITH_PARENT_JS}
    const s = require('net').createServer((c) => { c.write('hello\\n'); c.on('error', () => {}) })
    s.listen(${transport === 'unix' ? JSON.stringify(path) : "0, '127.0.0.1'"}, () => console.log(${transport === 'unix' ? "'ok'" : 's.address().port'}))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const first = String(await new Promise((r) => srv.stdout.once('data', r))).trim()
  const target = transport === 'unix' ? { unix: path } : { hostname: '127.0.0.1', port: Number(first) }
  async function once(busyMs) {
    let got = ''
    const p = connect({ ...target, socket: { data(s, d) { got += d } } })
    const t = now()
    while (now() - t < busyMs);
    const s = await p
    await waitFor(() => got === 'hello\n', 1000)
    s.terminate()
    return got === 'hello\n'
  }
  let natural = 0
  for (let i = 0; i < 20; i++) if (await once(0)) natural++
  let forced = 0
  for (let i = 0; i < 3; i++) if (await once(200)) forced++
  srv.kill('SIGKILL')
  check(`${transport}: a greeting sent by the server on accept reaches the client (natural timing)`, natural === 20, `${natural}/20 delivered within 1 s`)
  check(`${transport}: ...also when it arrives before the reactor sees the connect complete (client busy 200 ms after connect())`, forced === 3, `${forced}/3 delivered within 1 s`)
}

async function main() {
  const seed = seedFromArgs()
  note(`seed ${seed}`)
  figure('seed', String(seed))
  figure('bytes per transport', `${TOTAL / MiB} MiB client->server + ${REVERSE / MiB} MiB server->client`)
  const dir = mkdtempSync(join(tmpdir(), 'bunnet-integrity-'))
  try {
    if (!process.env.ONLY_TLS) {
    await transfer('tcp', prng(seed), dir)
    await transfer('unix', prng(seed ^ 0x5555), dir)
    }
    await transfer('tls', prng(seed ^ 0x7777), dir)
    await parallel(16, prng(seed ^ 0xaaaa), dir)
    await greeting('tcp', dir)
    await greeting('unix', dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

runArea(main)
