// Cost of delivering one `data` event to JS. A sender in a second process of the same
// implementation (this script with --role server) accepts one connection and sends 32-byte
// messages with TCP_NODELAY as fast as it can while pacing itself: one write, then yield with
// setImmediate, and at least --gap-us microseconds (default GAP_US, busy-waited in the sender)
// between two writes, so that the receiver keeps up and each read stays one 32-byte message.
// With --gap-us 0 (setImmediate pacing alone) reads carried 45-245 B, varying from run to run
// and between implementations with whichever side happened to be faster, so the events were
// not comparable; with 25 us still ~44 B; with 50 us ~33 B and the same event rate for all
// three. Each event then includes the receiver's wake-up from epoll (most of the system time).
// This process connects, counts `data` events and bytes, and measures its own CPU time
// (process.cpuUsage(): user + system, all threads) over a fixed window after a warm-up.
// Reports CPU ns per data event; lower is better. avgBytesPerEvent in the JSON shows how much
// each event carried (ideally 32). Afterwards the sender stops and reports how many bytes it
// sent; all must have arrived.
import net from 'node:net'
import { HOST, args, bunApi, flushPending, now, quick, run, runServerPeer, serverPort, sleep, until, writeAll } from '../lib.mjs'

const MSG_SIZE = 32
const WARMUP_MS = 500
const DURATION_MS = quick ? 1000 : 3000
const msg = Buffer.alloc(MSG_SIZE, 0x64)
const GAP_US = 50 // 20,000 messages/s at most: every receiver keeps up, one message per read
const gapMs = Number(args['gap-us'] ?? GAP_US) / 1000
let nextAt = 0 // sender: earliest time of the next write
/** Sender: busy-waits until the next write is due (the sender's CPU is not measured). */
function pace() {
  if (!gapMs) return
  let t = now()
  while (t < nextAt) t = now()
  nextAt = Math.max(nextAt + gapMs, t) // no catch-up bursts after a stall
}

let failure = null
const check = () => {
  if (failure) throw failure
}
const api = await bunApi()

// ---- sender (peer) ------------------------------------------------------------------------
let sent = 0 // bytes handed to write / writeAll
let stopped = false
let conns = 0
let idle = () => true // no unsent bytes left in userland

async function startSender() {
  if (api) {
    const tick = (s) => {
      if (stopped || s.readyState !== 1) return
      pace()
      writeAll(s, msg)
      sent += MSG_SIZE
      if (!s.data.pending) setImmediate(tick, s) // else `drain` resumes
    }
    const server = api.listen({
      hostname: HOST,
      port: 0,
      socket: {
        open(s) {
          if (conns++) return (failure ??= new Error('more than one connection'))
          s.setNoDelay?.(true)
          s.data = {}
          idle = () => !s.data.pending
          tick(s)
        },
        data() {},
        drain(s) {
          flushPending(s)
          if (!s.data.pending) tick(s)
        },
        close: () => stopped || (failure ??= new Error('sender socket closed during the run')),
        error: (s, e) => (failure ??= e),
      },
    })
    return server.port
  }
  const server = net.createServer((s) => {
    if (conns++) return (failure ??= new Error('more than one connection'))
    s.setNoDelay(true)
    s.on('error', (e) => (failure ??= e))
    s.on('close', () => stopped || (failure ??= new Error('sender socket closed during the run')))
    idle = () => s.writableLength === 0
    const tick = () => {
      if (stopped || s.destroyed) return
      pace()
      sent += MSG_SIZE
      if (s.write(msg)) setImmediate(tick)
      else s.once('drain', tick)
    }
    tick()
  })
  await new Promise((r) => server.listen(0, HOST, r))
  return server.address().port
}

// ---- receiver (measuring process) ---------------------------------------------------------
let events = 0
let bytes = 0

async function startReceiver(port) {
  if (api) {
    await api.connect({
      hostname: HOST,
      port,
      socket: {
        data(s, d) {
          events++
          bytes += d.length
        },
        close: () => (failure ??= new Error('receiver socket closed during the run')),
        error: (s, e) => (failure ??= e),
      },
    })
    return
  }
  await new Promise((resolve, reject) => {
    const s = net.connect({ port, host: HOST, noDelay: true }, resolve)
    s.setNoDelay(true)
    s.on('data', (d) => {
      events++
      bytes += d.length
    })
    s.on('error', (e) => reject((failure ??= e)))
    s.on('close', () => (failure ??= new Error('receiver socket closed during the run')))
  })
}

async function pollSleep(ms) {
  const end = now() + ms
  while (now() < end) {
    check()
    await sleep(Math.min(50, Math.max(0, end - now())))
  }
  check()
}

if (args.role === 'server') {
  runServerPeer(startSender, {
    commands: {
      async stop() {
        stopped = true
        await until(idle, 10_000, 'the sender to flush')
        return sent
      },
    },
    check,
  })
} else {
  run(async () => {
    const { port, peer } = await serverPort(import.meta.url, null, true, args['gap-us'] ? ['--gap-us', String(args['gap-us'])] : [])
    await startReceiver(port)
    await pollSleep(WARMUP_MS)
    const e0 = events
    const b0 = bytes
    const c0 = process.cpuUsage()
    const t0 = now()
    await pollSleep(DURATION_MS)
    const c = process.cpuUsage(c0)
    const t1 = now()
    const n = events - e0
    const nBytes = bytes - b0
    peer.send('stop')
    const total = Number(await peer.next())
    await until(() => bytes >= total || failure, 10_000, `all ${total} sent bytes (have ${bytes})`).catch((e) => (failure ??= e))
    await sleep(50)
    check()
    if (bytes !== total) throw new Error(`receiver got ${bytes} bytes in ${events} events, the sender sent ${total}`)
    if (!n) throw new Error('no data events in the window')
    const cpuNs = (c.user + c.system) * 1000
    const seconds = (t1 - t0) / 1000
    peer.kill()
    return {
      value: cpuNs / n,
      unit: 'CPU ns/event',
      events: n,
      eventsPerSec: n / seconds,
      avgBytesPerEvent: nBytes / n,
      gapUs: gapMs * 1000,
      userNsPerEvent: (c.user * 1000) / n,
      systemNsPerEvent: (c.system * 1000) / n,
      cpuUserMs: c.user / 1000,
      cpuSystemMs: c.system / 1000,
      cpuUtil: cpuNs / 1e9 / seconds,
      seconds,
    }
  })
}
