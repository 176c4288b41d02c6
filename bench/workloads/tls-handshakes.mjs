// TLS handshakes: a TLS server (test certificate for localhost) and 8 concurrent client loops in
// this process; each loop connects with `tls: { ca, serverName: 'localhost' }` (node:tls:
// `tls.connect` with `ca`/`servername`), waits for the handshake to complete (Bun API: the
// `handshake` handler with success true; node:tls: 'secureConnect'), end()s the socket and starts
// the next connection. Reports completed handshakes per second after a warm-up. Every handshake
// is a full one: no session is ever offered (Bun/bunnet resume only after setSession(), node:tls
// only with a `session` option); isSessionReused() is checked on every 8th connection and must
// be false. The negotiated protocol and cipher are reported too.
import tls from 'node:tls'
import { HOST, bunApi, measureRate, quick, run, startLoops, tlsFixtures } from '../lib.mjs'

const WORKERS = 8
const WARMUP_MS = 500
const DURATION_MS = quick ? 1000 : 3000
const SAMPLE_EVERY = 8 // isSessionReused() is checked on every 8th connection
const { ca, cert, key } = tlsFixtures()

let completed = 0
let started = 0
let reuseChecked = 0
let sessionsReused = 0
let protocol = null
let cipher = null
let stopping = false
let failure = null

/** Starts WORKERS loops of `once()` (a promise per connection) until `stopping`. */
const startWorkers = (once) =>
  startLoops(WORKERS, once, () => !stopping && !failure, () => completed++, (e) => (failure ??= e))

/** Client side, after a successful handshake: samples session reuse, protocol and cipher. */
function onHandshake(reused, version, cipherName) {
  if (started++ % SAMPLE_EVERY !== 0) return
  reuseChecked++
  if (reused()) sessionsReused++
  protocol ??= version()
  cipher ??= cipherName()
}

const api = await bunApi()

/** Starts the TLS server (it only accepts; the client ends each connection); resolves with its port. */
async function startServer() {
  if (api) {
    const server = api.listen({
      hostname: HOST,
      port: 0,
      tls: { key, cert },
      socket: { data: () => {}, error: (s, e) => (failure ??= e) },
    })
    return server.port
  }
  const server = tls.createServer({ key, cert }, (s) => {
    s.on('data', () => {})
    s.on('error', (e) => (failure ??= e))
  })
  server.on('connection', (s) => s.setNoDelay(true)) // before the handshake, like Bun's sockets
  server.on('tlsClientError', (e) => (failure ??= e))
  await new Promise((r) => server.listen({ port: 0, host: HOST, backlog: 511 }, r))
  return server.address().port
}

/** Starts the WORKERS client loops against `port`. */
function startClients(port) {
  if (api) {
    const once = () =>
      new Promise((resolve, reject) => {
        let done = false
        api
          .connect({
            hostname: HOST,
            port,
            tls: { ca, serverName: 'localhost' },
            socket: {
              handshake(s, success, authorizationError) {
                if (!success) return reject(authorizationError ?? new Error('handshake failed'))
                done = true
                onHandshake(() => s.isSessionReused(), () => s.getTLSVersion(), () => s.getCipher()?.name)
                s.end()
                resolve()
              },
              data: () => {},
              close: (s, e) => done || reject(new Error(`client closed before the handshake (${e?.code ?? 'no error'})`)),
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
      const s = tls.connect({ port, host: HOST, ca, servername: 'localhost' }, () => {
        onHandshake(() => s.isSessionReused(), () => s.getProtocol(), () => s.getCipher()?.name)
        s.end()
        resolve()
      })
      s.setNoDelay(true) // (tls.connect ignores the `noDelay` option)
      s.on('error', reject)
    })
  startWorkers(once)
}

run(async () => {
  const port = await startServer()
  startClients(port)
  const r = await measureRate(() => completed, WARMUP_MS, DURATION_MS, () => {
    if (failure) throw failure
  })
  stopping = true
  if (sessionsReused) throw new Error(`${sessionsReused} of ${reuseChecked} sampled handshakes resumed a session`)
  if (!reuseChecked) throw new Error('no handshake completed')
  return {
    value: r.rate,
    unit: 'handshakes/s',
    workers: WORKERS,
    handshakes: r.count,
    seconds: r.seconds,
    reuseChecked,
    sessionsReused,
    protocol,
    cipher,
  }
})
