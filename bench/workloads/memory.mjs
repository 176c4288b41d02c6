// Memory per idle connection. --side server: this process listens, a peer child process (same
// implementation) opens COUNT connections to it, and this process's RSS growth is measured.
// --side client: a peer child listens and this process opens the COUNT connections.
// RSS is sampled after a forced GC before any connection exists and again once all COUNT are
// established on both sides and idle; reports (after - before) / COUNT bytes per connection.
// The same file is the peer (--role peer-clients | peer-server), driven over stdin/stdout.
import net from 'node:net'
import { HOST, args, bunApi, gc, quick, rss, run, runPeer, sleep, spawnPeer, until } from '../lib.mjs'

const COUNT = Number(args.count ?? (quick ? 2000 : 10000))
const BATCH = 100 // connects in flight at once (stays well under the accept backlog)
const role = args.role ?? 'main'
const side = args.side
const WAIT_MS = 60_000

const api = await bunApi()
let accepted = 0
let closedEarly = 0

/** Starts a listener that counts accepted connections; resolves with its port. */
async function startServer() {
  if (api) {
    const l = api.listen({
      hostname: HOST,
      port: 0,
      socket: { open: () => accepted++, data() {}, close: () => closedEarly++ },
    })
    return l.port
  }
  const server = net.createServer((s) => {
    accepted++
    s.on('close', () => closedEarly++)
    s.on('error', () => {})
  })
  await new Promise((r) => server.listen({ port: 0, host: HOST, backlog: 4096 }, r))
  return server.address().port
}

/** Opens COUNT idle client connections, BATCH at a time; returns them (kept referenced). */
async function openClients(port) {
  const socks = []
  const one = api
    ? () => api.connect({ hostname: HOST, port, socket: { data() {}, close: () => closedEarly++ } })
    : () =>
        new Promise((resolve, reject) => {
          const s = net.connect({ port, host: HOST, noDelay: true }, () => resolve(s))
          s.on('error', reject)
          s.on('close', () => closedEarly++)
        })
  for (let i = 0; i < COUNT; i += BATCH) {
    const n = Math.min(BATCH, COUNT - i)
    socks.push(...(await Promise.all(Array.from({ length: n }, one))))
  }
  return socks
}

/** Spawns this script as a peer (same runtime and implementation); see `spawnPeer` in lib.mjs. */
const startPeer = (peerRole, extra = []) => spawnPeer(import.meta.url, peerRole, ['--count', String(COUNT), ...extra])

async function settledRss() {
  await sleep(300)
  await gc()
  await sleep(200)
  await gc()
  return rss()
}

async function measureServerSide() {
  const port = await startServer()
  const peer = startPeer('peer-clients', ['--port', String(port)])
  if ((await peer.next()) !== 'ready') throw new Error('peer did not start')
  const before = await settledRss()
  peer.send('go')
  const line = await peer.next()
  if (line !== 'open') throw new Error(`peer: ${line}`)
  await until(() => accepted >= COUNT, WAIT_MS, `${COUNT} accepted connections (have ${accepted})`)
  const after = await settledRss()
  if (closedEarly) throw new Error(`${closedEarly} server sockets closed while idle`)
  peer.kill()
  return { before, after, accepted }
}

async function measureClientSide() {
  const peer = startPeer('peer-server')
  const port = Number(await peer.next())
  const before = await settledRss()
  const socks = await openClients(port)
  peer.send('count')
  const serverCount = Number(await peer.next())
  if (serverCount < COUNT) throw new Error(`peer server accepted only ${serverCount} of ${COUNT}`)
  const after = await settledRss()
  if (closedEarly) throw new Error(`${closedEarly} client sockets closed while idle`)
  peer.kill()
  return { before, after, open: socks.length }
}

let peerSockets = null // keeps the peer's client sockets referenced

// Peers: exit when stdin closes (the main process is gone); see `runPeer` in lib.mjs.
async function peer(next) {
  if (role === 'peer-clients') {
    console.log('ready')
    await next() // "go"
    const socks = (peerSockets = await openClients(Number(args.port)))
    console.log(socks.length === COUNT ? 'open' : `opened only ${socks.length}`)
  } else {
    console.log(await startServer())
    await next() // "count": report once all are accepted (or after WAIT_MS)
    await until(() => accepted >= COUNT, WAIT_MS, 'connections').catch(() => {})
    console.log(accepted)
  }
}

if (role === 'main') {
  run(async () => {
    if (side !== 'server' && side !== 'client') throw new Error('--side must be server or client')
    const r = side === 'server' ? await measureServerSide() : await measureClientSide()
    return { value: (r.after - r.before) / COUNT, unit: 'bytes/conn', side, count: COUNT, rssBefore: r.before, rssAfter: r.after }
  })
} else {
  runPeer(peer)
}
