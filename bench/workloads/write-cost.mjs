// Cost of one small socket.write() call from JS. A connected pair in this process: the client
// writes a 1-byte Buffer WRITES times in a tight loop, BATCH writes per event-loop turn, and
// yields with setImmediate between batches so the receiving (server) side, which reads and
// counts everything, drains the kernel buffer. If a write takes less than asked (Bun API:
// returns 0; node:net: returns false, i.e. it started buffering in userland), the batch stops
// early, is left out of the statistics, and the loop waits for `drain`. Both sides use
// TCP_NODELAY, so every write is one send(2) and one 1-byte segment. Reports the median over
// batches of (batch wall time / writes in the batch), in ns per write; lower is better.
// At the end all bytes must have arrived (a miscount fails the run).
import net from 'node:net'
import { HOST, bunApi, now, quick, run, sleep, until } from '../lib.mjs'

const WRITES = quick ? 200_000 : 1_000_000
const BATCH = 10_000
const WARMUP_BATCHES = quick ? 3 : 10 // run before the timed ones, not counted
const ONE = Buffer.from('w')

let received = 0 // bytes the server side read
let failure = null
const check = () => {
  if (failure) throw failure
}

/** Sets up the pair; returns { write() -> true if the whole byte was taken now, waitDrain(), bytesWritten() }. */
async function withBunApi({ connect, listen }) {
  const server = listen({
    hostname: HOST,
    port: 0,
    socket: {
      open: (s) => s.setNoDelay?.(true),
      data: (s, d) => (received += d.length),
      error: (s, e) => (failure ??= e),
    },
  })
  let onDrain = null
  const client = await connect({
    hostname: HOST,
    port: server.port,
    socket: {
      data() {},
      drain() {
        const f = onDrain
        onDrain = null
        f?.()
      },
      error: (s, e) => (failure ??= e),
      close: () => (failure ??= new Error('client closed during the run')),
    },
  })
  client.setNoDelay?.(true)
  let written = 0
  return {
    write() {
      const n = client.write(ONE)
      if (n === 1) {
        written++
        return true
      }
      if (n < 0) throw new Error(`write returned ${n} after ${written} bytes`)
      return false // 0: nothing taken; resent after drain
    },
    waitDrain: () => new Promise((r) => (onDrain = r)),
    written: () => written,
    bytesWritten: () => client.bytesWritten,
  }
}

async function withNodeNet() {
  const server = net.createServer((s) => {
    s.setNoDelay(true)
    s.on('data', (d) => (received += d.length))
    s.on('error', (e) => (failure ??= e))
  })
  await new Promise((r) => server.listen(0, HOST, r))
  const client = net.connect({ port: server.address().port, host: HOST, noDelay: true })
  client.setNoDelay(true)
  client.on('error', (e) => (failure ??= e))
  await new Promise((r) => client.once('connect', r))
  let written = 0
  let blocked = false
  return {
    write() {
      if (blocked) return false
      written++ // node takes the byte either way (buffering it if need be)
      if (client.write(ONE)) return true
      blocked = true
      return false
    },
    waitDrain: () =>
      new Promise((r) =>
        client.once('drain', () => {
          blocked = false
          r()
        }),
      ),
    written: () => written,
    bytesWritten: () => client.bytesWritten,
  }
}

run(async () => {
  const api = await bunApi()
  const pair = await (api ? withBunApi(api) : withNodeNet())
  const perWrite = [] // ns per write, one per full batch
  let shortBatches = 0
  let timedWrites = 0
  const total = (WARMUP_BATCHES * BATCH) + WRITES
  while (pair.written() < total) {
    check()
    const warm = pair.written() < WARMUP_BATCHES * BATCH
    const n = Math.min(BATCH, total - pair.written())
    let i = 0
    let full = true
    const t0 = now()
    for (; i < n; i++) {
      if (!pair.write()) {
        full = false
        break
      }
    }
    const t1 = now()
    if (!full) {
      shortBatches++
      await Promise.race([pair.waitDrain(), sleep(10_000).then(() => (failure ??= new Error('no drain within 10 s')))])
    } else if (!warm) {
      perWrite.push(((t1 - t0) * 1e6) / n)
      timedWrites += n
    }
    await new Promise((r) => setImmediate(r)) // let the receiver drain
  }
  const want = pair.written()
  await until(() => received >= want || failure, 10_000, `all ${want} bytes at the receiver (have ${received})`).catch((e) => (failure ??= e))
  await sleep(50) // a late extra byte would show up here
  check()
  if (received !== want) throw new Error(`receiver got ${received} bytes, the client wrote ${want}`)
  if (pair.bytesWritten() !== want) throw new Error(`client bytesWritten ${pair.bytesWritten()}, expected ${want}`)
  if (perWrite.length < 5) throw new Error(`only ${perWrite.length} full batches (${shortBatches} short)`)
  const sorted = [...perWrite].sort((a, b) => a - b)
  const med = sorted.length % 2 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2
  return {
    value: med,
    unit: 'ns/write',
    batchSize: BATCH,
    timedBatches: perWrite.length,
    timedWrites,
    shortBatches,
    minNs: sorted[0],
    p90Ns: sorted[Math.floor(sorted.length * 0.9)],
    meanNs: perWrite.reduce((a, b) => a + b, 0) / perWrite.length,
  }
})
