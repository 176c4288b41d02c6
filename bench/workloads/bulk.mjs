// Bulk transfer: one client sends TOTAL bytes to an in-process server in 64 KiB chunks,
// honouring backpressure (Bun API: write() returns the bytes taken, the rest is resent on
// `drain`; node:net: wait for 'drain' when write() returns false). The server counts bytes.
// Reports MB/s (1 MB = 1e6 bytes), timed from connect to the server's last byte.
import net from 'node:net'
import { HOST, bunApi, now, quick, run, sleep } from '../lib.mjs'

const TOTAL = quick ? 64 * 2 ** 20 : 2 ** 30
const CHUNK = 64 * 2 ** 10
const chunk = Buffer.alloc(CHUNK, 0x62)

let received = 0
let failure = null
let finish
const finished = new Promise((resolve, reject) => (finish = { resolve, reject }))
function onServerData(len) {
  received += len
  if (received >= TOTAL) finish.resolve(now())
}
const onError = (e) => finish.reject((failure ??= e))

async function withBunApi({ connect, listen }) {
  const server = listen({
    hostname: HOST,
    port: 0,
    socket: { data: (s, d) => onServerData(d.length), error: onError },
  })
  let sent = 0 // bytes the kernel took
  const pump = (s) => {
    while (sent < TOTAL) {
      const off = sent % CHUNK
      const len = Math.min(CHUNK - off, TOTAL - sent)
      const n = s.write(chunk, off, len)
      if (n < 0) return onError(new Error(`write returned ${n} with ${sent} of ${TOTAL} bytes sent`))
      sent += n
      if (n < len) return // short write: the rest goes out from `drain`
    }
  }
  const t0 = now()
  const client = await connect({
    hostname: HOST,
    port: server.port,
    socket: { data() {}, drain: pump, error: onError, close: () => sent < TOTAL && onError(new Error('client closed early')) },
  })
  pump(client)
  return { t0, bytesWritten: () => client.bytesWritten }
}

async function withNodeNet() {
  const server = net.createServer((s) => {
    s.on('data', (d) => onServerData(d.length))
    s.on('error', onError)
  })
  await new Promise((r) => server.listen(0, HOST, r))
  let sent = 0 // bytes handed to write()
  const t0 = now()
  const client = net.connect({ port: server.address().port, host: HOST, noDelay: true })
  client.setNoDelay(true)
  client.on('error', onError)
  const pump = () => {
    while (sent < TOTAL) {
      const len = Math.min(CHUNK, TOTAL - sent)
      sent += len
      if (!client.write(len === CHUNK ? chunk : chunk.subarray(0, len))) return client.once('drain', pump)
    }
  }
  client.once('connect', pump)
  return { t0, bytesWritten: () => client.bytesWritten }
}

run(async () => {
  const api = await bunApi()
  const { t0, bytesWritten } = await (api ? withBunApi(api) : withNodeNet())
  const t1 = await finished
  await sleep(50) // a late extra byte would show up here
  if (failure) throw failure
  if (received !== TOTAL) throw new Error(`server received ${received} bytes, expected ${TOTAL}`)
  if (bytesWritten() !== TOTAL) throw new Error(`client bytesWritten ${bytesWritten()}, expected ${TOTAL}`)
  const seconds = (t1 - t0) / 1000
  return { value: TOTAL / 1e6 / seconds, unit: 'MB/s', bytes: TOTAL, seconds }
})
