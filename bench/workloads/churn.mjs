// Connection churn: 8 concurrent workers each loop: connect, write 1 byte, wait for the
// server's 1-byte echo, end() the client, start the next connection (right after end(), not
// waiting for the peer's FIN). Reports completed connections per second after a warm-up. With
// --split the echo server runs in a second process of the same implementation (this script with
// --role server, printing its port); connections are counted in the clients' process.
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { HOST, args, bunApi, measureRate, quick, run, runServerPeer, serverPort, startLoops } from '../lib.mjs'

const WORKERS = 8
const WARMUP_MS = 500
const DURATION_MS = quick ? 1000 : 3000
const ONE = Buffer.from('x')

/** TCP sockets in TIME_WAIT on this machine now (Linux /proc/net/sockstat; null elsewhere). Each
 * connection here leaves one for 60 s; while the kernel's table (`net.ipv4.tcp_max_tw_buckets`) is
 * filling, every connect() pays for the port search past them, and once it is full closes skip
 * TIME_WAIT: the same implementation can measure 2x apart depending on the runs of the last minute. */
const timeWait = () => {
  try {
    return Number(/\btw (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? NaN)
  } catch {
    return null
  }
}

let completed = 0
let stopping = false
let failure = null

/** Starts WORKERS loops of `once()` (a promise per connection) until `stopping`. */
const startWorkers = (once) =>
  startLoops(WORKERS, once, () => !stopping && !failure, () => completed++, (e) => (failure ??= e))

const api = await bunApi()

/** Starts the 1-byte echo server; resolves with its port. */
async function startServer() {
  if (api) {
    const server = api.listen({
      hostname: HOST,
      port: 0,
      socket: { data: (s, d) => s.write(d), error: (s, e) => (failure ??= e) },
    })
    return server.port
  }
  const server = net.createServer((s) => {
    s.setNoDelay(true)
    s.on('data', (d) => s.write(d))
    s.on('error', (e) => (failure ??= e))
  })
  await new Promise((r) => server.listen({ port: 0, host: HOST, backlog: 511 }, r))
  return server.address().port
}

/** Starts the WORKERS client loops against `port`. */
function startClients(port) {
  if (api) {
    const once = () =>
      new Promise((resolve, reject) => {
        let echoed = false
        api
          .connect({
            hostname: HOST,
            port,
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
          })
          .catch(reject)
      })
    startWorkers(once)
    return
  }
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

if (args.role === 'server') {
  runServerPeer(startServer, {
    check: () => {
      if (failure) throw failure
    },
  })
} else {
  run(async () => {
    const { port, peer } = await serverPort(import.meta.url, startServer)
    const timeWaitAtStart = timeWait()
    startClients(port)
    const r = await measureRate(() => completed, WARMUP_MS, DURATION_MS, () => {
      if (failure) throw failure
    })
    stopping = true
    peer?.kill()
    return { value: r.rate, unit: 'connections/s', workers: WORKERS, split: !!peer, connections: r.count, seconds: r.seconds, timeWaitAtStart, timeWaitAtEnd: timeWait() }
  })
}
