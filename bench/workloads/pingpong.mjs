// Ping-pong: each of --conns connections sends 32 bytes, the server echoes them, and the client
// sends the next message once the whole 32-byte reply is back. Server and clients share this
// process, or with --split the server runs in a second process of the same implementation (this
// script with --role server, printing its port). Reports round trips per second (all
// connections together), counted in the clients' process.
import net from 'node:net'
import { HOST, args, bunApi, flushPending, measureRate, quick, run, runServerPeer, serverPort, writeAll } from '../lib.mjs'

const CONNS = Number(args.conns ?? 1)
const MSG_SIZE = 32
const WARMUP_MS = 500
const DURATION_MS = quick ? 1000 : 3000
const msg = Buffer.alloc(MSG_SIZE, 0x61)

let trips = 0
let sent = 0 // bytes the clients asked to send
let received = 0 // bytes the clients got back
let failure = null
const check = () => {
  if (failure) throw failure
  if (received > sent) throw new Error(`clients received ${received} bytes but sent only ${sent}`)
}

const api = await bunApi()

/** Starts the echo server; resolves with its port. */
async function startServer() {
  if (api) {
    const server = api.listen({
      hostname: HOST,
      port: 0,
      socket: {
        data: (s, d) => writeAll(s, d),
        drain: flushPending,
        error: (s, e) => (failure = e),
      },
    })
    return server.port
  }
  const server = net.createServer((s) => {
    s.setNoDelay(true)
    s.on('data', (d) => s.write(d))
    s.on('error', (e) => (failure = e))
  })
  await new Promise((r) => server.listen(0, HOST, r))
  return server.address().port
}

/** Connects CONNS clients to `port` and starts their ping-pong loops. */
async function startClients(port) {
  if (api) {
    const client = {
      open(s) {
        s.data = { got: 0 }
        sent += MSG_SIZE
        writeAll(s, msg)
      },
      data(s, d) {
        received += d.length
        s.data.got += d.length
        if (s.data.got >= MSG_SIZE) {
          s.data.got -= MSG_SIZE
          trips++
          sent += MSG_SIZE
          writeAll(s, msg)
        }
      },
      drain: flushPending,
      close(s, e) {
        failure ??= new Error(`client socket closed during the run (${e?.code ?? 'no error'})`)
      },
      error: (s, e) => (failure = e),
    }
    await Promise.all(Array.from({ length: CONNS }, () => api.connect({ hostname: HOST, port, socket: client })))
    return
  }
  const one = () =>
    new Promise((resolve, reject) => {
      const s = net.connect({ port, host: HOST, noDelay: true }, () => {
        s.setNoDelay(true)
        sent += MSG_SIZE
        s.write(msg)
        resolve()
      })
      let got = 0
      s.on('data', (d) => {
        received += d.length
        got += d.length
        if (got >= MSG_SIZE) {
          got -= MSG_SIZE
          trips++
          sent += MSG_SIZE
          s.write(msg)
        }
      })
      s.on('error', (e) => reject((failure = e)))
      s.on('close', () => (failure ??= new Error('client socket closed during the run')))
    })
  await Promise.all(Array.from({ length: CONNS }, one))
}

if (args.role === 'server') {
  runServerPeer(startServer, { check: () => { if (failure) throw failure } })
} else {
  run(async () => {
    const { port, peer } = await serverPort(import.meta.url, startServer)
    await startClients(port)
    const r = await measureRate(() => trips, WARMUP_MS, DURATION_MS, check)
    peer?.kill()
    return { value: r.rate, unit: 'round trips/s', conns: CONNS, split: !!peer, roundTrips: r.count, seconds: r.seconds }
  })
}
