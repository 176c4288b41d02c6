// Connection churn: 8 concurrent workers each loop: connect, write 1 byte, wait for the
// server's 1-byte echo, end() the client, start the next connection (right after end(), not
// waiting for the peer's FIN). Reports completed connections per second after a warm-up.
import net from 'node:net'
import { HOST, bunApi, measureRate, quick, run } from '../lib.mjs'

const WORKERS = 8
const WARMUP_MS = 500
const DURATION_MS = quick ? 1000 : 3000
const ONE = Buffer.from('x')

let completed = 0
let stopping = false
let failure = null

/** Starts WORKERS loops of `once()` (a promise per connection) until `stopping`. */
function startWorkers(once) {
  const loop = () => {
    if (stopping || failure) return
    once().then(() => {
      completed++
      loop()
    }, (e) => (failure ??= e))
  }
  for (let i = 0; i < WORKERS; i++) loop()
}

async function withBunApi({ connect, listen }) {
  const server = listen({
    hostname: HOST,
    port: 0,
    socket: { data: (s, d) => s.write(d), error: (s, e) => (failure ??= e) },
  })
  const once = () =>
    new Promise((resolve, reject) => {
      let echoed = false
      connect({
        hostname: HOST,
        port: server.port,
        socket: {
          open: (s) => s.write(ONE),
          data(s) {
            echoed = true
            s.end()
            resolve()
          },
          close: (s, e) => echoed || reject(new Error(`client closed before the echo (${e?.code ?? 'no error'})`)),
          connectError: (s, e) => reject(e),
          error: (s, e) => reject(e),
        },
      }).catch(reject)
    })
  startWorkers(once)
}

async function withNodeNet() {
  const server = net.createServer((s) => {
    s.setNoDelay(true)
    s.on('data', (d) => s.write(d))
    s.on('error', (e) => (failure ??= e))
  })
  await new Promise((r) => server.listen({ port: 0, host: HOST, backlog: 511 }, r))
  const { port } = server.address()
  const once = () =>
    new Promise((resolve, reject) => {
      const s = net.connect({ port, host: HOST, noDelay: true }, () => s.write(ONE))
      s.setNoDelay(true)
      s.once('data', () => {
        s.end()
        resolve()
      })
      s.on('error', reject)
    })
  startWorkers(once)
}

run(async () => {
  const api = await bunApi()
  await (api ? withBunApi(api) : withNodeNet())
  const r = await measureRate(() => completed, WARMUP_MS, DURATION_MS, () => {
    if (failure) throw failure
  })
  stopping = true
  return { value: r.rate, unit: 'connections/s', workers: WORKERS, connections: r.count, seconds: r.seconds }
})
