// TLS bulk transfer: one TLS client (`tls: { ca, serverName: 'localhost' }`; node:tls:
// `tls.connect` with `ca`/`servername`) sends TOTAL bytes to a TLS server in this process in
// 64 KiB writes, honouring backpressure (Bun API: write() returns the plaintext bytes taken, the
// rest is resent on `drain`; node:tls: wait for 'drain' when write() returns false). Writing
// starts once the handshake is complete (Bun API: `handshake` handler with success true;
// node:tls: 'secureConnect'). The server counts bytes. Reports MB/s (1 MB = 1e6 bytes), timed
// from connect to the server's last byte; the server's count and the client's bytesWritten must
// both equal TOTAL. The negotiated protocol and cipher are reported (each stack picks its own).
import tls from 'node:tls'
import { HOST, bunApi, bunBulkSender, nodeBulkSender, now, quick, run, sleep, tlsFixtures } from '../lib.mjs'

const TOTAL = quick ? 64 * 2 ** 20 : 2 ** 30
const CHUNK = 64 * 2 ** 10
const chunk = Buffer.alloc(CHUNK, 0x62)
const { ca, cert, key } = tlsFixtures()

let received = 0 // server side
let failure = null
let finish
const finished = new Promise((resolve, reject) => (finish = { resolve, reject }))
finished.catch(() => {}) // also reported through `failure`
/** Server side: counts bytes; the last one ends the timing. */
function onServerData(len) {
  received += len
  if (received >= TOTAL && received - len < TOTAL) finish.resolve(now())
}
const onError = (e) => finish.reject((failure ??= e))

const api = await bunApi()

/** Starts the counting TLS server; resolves with its port. */
async function startServer() {
  if (api) {
    const server = api.listen({
      hostname: HOST,
      port: 0,
      tls: { key, cert },
      socket: { data: (s, d) => onServerData(d.length), error: (s, e) => onError(e) },
    })
    return server.port
  }
  const server = tls.createServer({ key, cert }, (s) => {
    s.on('data', (d) => onServerData(d.length))
    s.on('error', onError)
  })
  server.on('connection', (s) => s.setNoDelay(true)) // like Bun's sockets
  server.on('tlsClientError', onError)
  await new Promise((r) => server.listen(0, HOST, r))
  return server.address().port
}

/** Client: streams TOTAL bytes to `port` once the handshake is done. */
async function startClient(port) {
  const onUnexpected = () => onError(new Error('client got unexpected data'))
  if (api) {
    const sender = bunBulkSender(chunk, TOTAL, onError) // sent(): plaintext bytes the session took
    let ready = false
    const pump = (s) => ready && sender.pump(s)
    const t0 = now()
    const client = await api.connect({
      hostname: HOST,
      port,
      tls: { ca, serverName: 'localhost' },
      socket: {
        handshake(s, success, authorizationError) {
          if (!success) return onError(authorizationError ?? new Error('handshake failed'))
          ready = true
          pump(s)
        },
        data: onUnexpected,
        drain: pump,
        error: (s, e) => onError(e),
        close: () => sender.sent() < TOTAL && onError(new Error('client closed early')),
      },
    })
    return {
      t0,
      bytesWritten: () => client.bytesWritten,
      protocol: () => client.getTLSVersion(),
      cipher: () => client.getCipher()?.name,
    }
  }
  const t0 = now()
  const client = tls.connect({ port, host: HOST, ca, servername: 'localhost' })
  client.setNoDelay(true) // (tls.connect ignores the `noDelay` option)
  client.on('error', onError)
  client.on('data', onUnexpected)
  client.once('secureConnect', nodeBulkSender(client, chunk, TOTAL))
  return {
    t0,
    bytesWritten: () => client.bytesWritten,
    protocol: () => client.getProtocol(),
    cipher: () => client.getCipher()?.name,
  }
}

run(async () => {
  const port = await startServer()
  const client = await startClient(port)
  const t1 = await finished
  await sleep(50) // a late extra byte would show up here
  if (failure) throw failure
  if (received !== TOTAL) throw new Error(`server received ${received} bytes, expected ${TOTAL}`)
  if (client.bytesWritten() !== TOTAL) throw new Error(`client bytesWritten ${client.bytesWritten()}, expected ${TOTAL}`)
  const seconds = (t1 - client.t0) / 1000
  return {
    value: TOTAL / 1e6 / seconds,
    unit: 'MB/s',
    bytes: TOTAL,
    seconds,
    protocol: client.protocol(),
    cipher: client.cipher(),
  }
})
