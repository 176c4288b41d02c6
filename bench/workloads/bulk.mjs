// Bulk transfer: one client sends TOTAL bytes to a server in 64 KiB chunks, honouring
// backpressure (Bun API: write() returns the bytes taken, the rest is resent on `drain`;
// node:net: wait for 'drain' when write() returns false). The server counts bytes.
// In-process (default): reports MB/s (1 MB = 1e6 bytes), timed from connect to the server's last
// byte. With --split the server runs in a second process of the same implementation (this script
// with --role server); it answers the last byte with a 1-byte ack over the connection, which
// ends the timing, and reports its byte count over stdin/stdout for the check.
import net from 'node:net'
import { HOST, args, bunApi, bunBulkSender, nodeBulkSender, now, quick, run, runServerPeer, serverPort, sleep } from '../lib.mjs'

const TOTAL = quick ? 64 * 2 ** 20 : 2 ** 30
const CHUNK = 64 * 2 ** 10
const chunk = Buffer.alloc(CHUNK, 0x62)
const ACK = Buffer.from('k')
const isServerPeer = args.role === 'server'

let received = 0 // server side
let failure = null
let finish
const finished = new Promise((resolve, reject) => (finish = { resolve, reject }))
finished.catch(() => {}) // also reported through `failure`
/** Server side: counts bytes; at TOTAL ends the timing (in-process) or sends the ack (peer). */
function onServerData(s, len, write) {
  received += len
  if (received >= TOTAL && received - len < TOTAL) {
    if (isServerPeer) write(s, ACK)
    else finish.resolve(now())
  }
}
const onError = (e) => finish.reject((failure ??= e))

const api = await bunApi()

/** Starts the counting server; resolves with its port. */
async function startServer() {
  if (api) {
    const server = api.listen({
      hostname: HOST,
      port: 0,
      socket: { data: (s, d) => onServerData(s, d.length, (s, b) => s.write(b)), error: (s, e) => onError(e) },
    })
    return server.port
  }
  const server = net.createServer((s) => {
    s.setNoDelay(true)
    s.on('data', (d) => onServerData(s, d.length, (s, b) => s.write(b)))
    s.on('error', onError)
  })
  await new Promise((r) => server.listen(0, HOST, r))
  return server.address().port
}

/** Client: streams TOTAL bytes to `port`; with `split`, the server's ack ends the timing. */
async function startClient(port, split) {
  const onAck = () => (split ? finish.resolve(now()) : onError(new Error('client got unexpected data')))
  if (api) {
    const { pump, sent } = bunBulkSender(chunk, TOTAL, onError) // sent(): bytes the kernel took
    const t0 = now()
    const client = await api.connect({
      hostname: HOST,
      port,
      socket: { data: onAck, drain: pump, error: (s, e) => onError(e), close: () => sent() < TOTAL && onError(new Error('client closed early')) },
    })
    pump(client)
    return { t0, bytesWritten: () => client.bytesWritten }
  }
  const t0 = now()
  const client = net.connect({ port, host: HOST, noDelay: true })
  client.setNoDelay(true)
  client.on('error', onError)
  client.on('data', onAck)
  client.once('connect', nodeBulkSender(client, chunk, TOTAL))
  return { t0, bytesWritten: () => client.bytesWritten }
}

if (isServerPeer) {
  runServerPeer(startServer, {
    commands: { count: () => received },
    check: () => {
      if (failure) throw failure
    },
  })
} else {
  run(async () => {
    const { port, peer } = await serverPort(import.meta.url, startServer)
    const { t0, bytesWritten } = await startClient(port, !!peer)
    const t1 = await finished
    await sleep(50) // a late extra byte would show up here
    if (failure) throw failure
    if (peer) {
      peer.send('count')
      received = Number(await peer.next())
      peer.kill()
    }
    if (received !== TOTAL) throw new Error(`server received ${received} bytes, expected ${TOTAL}`)
    if (bytesWritten() !== TOTAL) throw new Error(`client bytesWritten ${bytesWritten()}, expected ${TOTAL}`)
    const seconds = (t1 - t0) / 1000
    return { value: TOTAL / 1e6 / seconds, unit: 'MB/s', bytes: TOTAL, split: !!peer, seconds }
  })
}
