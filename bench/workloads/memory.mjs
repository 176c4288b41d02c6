// Memory per idle connection: the marginal cost of COUNT more idle connections.
// --side server: this process listens and a peer child process (same implementation) connects;
// --side client: a peer child listens and this process connects.
// First BASE connections are opened and kept (one-time costs such as lazily created state, code
// paths run for the first time and JIT tiers land before the baseline; nothing is closed, so no
// freed memory is reused and undercounted), then the sample `before`; then COUNT more, all idle,
// and the sample `after`. Each sample follows forced GCs and 10 s idle (settledRss).
// `value` is anonymous resident memory (malloc, the JS heap, stacks: /proc/self/status RssAnon)
// (after - before) / COUNT; details give total RSS and file-backed pages (the runtime's own
// binary paged in, not connection memory) the same way, and the JS heap's figures.
// The same file is the peer (--role peer-clients | peer-server), driven over stdin/stdout.
import net from 'node:net'
import { HOST, args, bunApi, gc, quick, rssParts, run, runPeer, sleep, spawnPeer, until } from '../lib.mjs'

const COUNT = Number(args.count ?? (quick ? 2000 : 10000))
const BATCH = 100 // connects in flight at once (stays well under the accept backlog)
const BASE = Number(args.base ?? (quick ? 200 : 1000)) // connections open before the baseline
const SETTLE_MS = quick ? 300 : 10_000 // idle time before each sample (see settledRss)
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
async function openClients(port, count = COUNT) {
  const socks = []
  const one = api
    ? () => api.connect({ hostname: HOST, port, socket: { data() {}, close: () => closedEarly++ } })
    : () =>
        new Promise((resolve, reject) => {
          const s = net.connect({ port, host: HOST, noDelay: true }, () => resolve(s))
          s.on('error', reject)
          s.on('close', () => closedEarly++)
        })
  for (let i = 0; i < count; i += BATCH) {
    const n = Math.min(BATCH, count - i)
    socks.push(...(await Promise.all(Array.from({ length: n }, one))))
  }
  return socks
}

/** Spawns this script as a peer (same runtime and implementation); see `spawnPeer` in lib.mjs. */
const startPeer = (peerRole, extra = []) => spawnPeer(import.meta.url, peerRole, ['--count', String(COUNT), '--base', String(BASE), ...extra])

/**
 * Resident memory once the process has been idle long enough for the runtime to settle: V8
 * sizes its young generation up while many objects survive (heapTotal +1.5 KB per connection
 * here right after the connects) and gives the slack back only through its memory reducer, which
 * runs about 8 s after the last full GC of an idle process. Every implementation waits the same.
 */
async function settledRss() {
  await sleep(300)
  await gc()
  await sleep(SETTLE_MS)
  await gc()
  await sleep(200)
  return rssParts()
}

async function measureServerSide() {
  const port = await startServer()
  const peer = startPeer('peer-clients', ['--port', String(port)])
  if ((await peer.next()) !== 'ready') throw new Error('peer did not start')
  const opened = async (n, total) => {
    peer.send(String(n))
    const line = await peer.next()
    if (line !== 'open') throw new Error(`peer: ${line}`)
    await until(() => accepted >= total, WAIT_MS, `${total} accepted connections (have ${accepted})`)
  }
  await opened(BASE, BASE)
  const before = await settledRss()
  await opened(COUNT, BASE + COUNT)
  const after = await settledRss()
  if (closedEarly) throw new Error(`${closedEarly} server sockets closed while idle`)
  peer.kill()
  return { before, after }
}

async function measureClientSide() {
  const peer = startPeer('peer-server')
  const port = Number(await peer.next())
  const socks = await openClients(port, BASE)
  const before = await settledRss()
  socks.push(...(await openClients(port)))
  peer.send('count')
  const serverCount = Number(await peer.next())
  if (serverCount < BASE + COUNT) throw new Error(`peer server accepted only ${serverCount} of ${BASE + COUNT}`)
  const after = await settledRss()
  if (closedEarly) throw new Error(`${closedEarly} client sockets closed while idle`)
  peer.kill()
  return { before, after, open: socks.length }
}

const peerSockets = [] // keeps the peer's client sockets referenced

// Peers: exit when stdin closes (the main process is gone); see `runPeer` in lib.mjs.
async function peer(next) {
  if (role === 'peer-clients') {
    console.log('ready')
    for (;;) {
      const n = Number(await next()) // open n more
      const socks = await openClients(Number(args.port), n)
      peerSockets.push(...socks)
      console.log(socks.length === n ? 'open' : `opened only ${socks.length}`)
    }
  } else {
    console.log(await startServer())
    await next() // "count": report once all are accepted (or after WAIT_MS)
    await until(() => accepted >= BASE + COUNT, WAIT_MS, 'connections').catch(() => {})
    console.log(accepted)
  }
}

if (role === 'main') {
  run(async () => {
    if (side !== 'server' && side !== 'client') throw new Error('--side must be server or client')
    const r = side === 'server' ? await measureServerSide() : await measureClientSide()
    const per = (k) => Math.round((r.after[k] - r.before[k]) / COUNT)
    return { value: per('anon'), unit: 'bytes/conn', side, count: COUNT, base: BASE, rss: per('total'), file: per('file'), heapTotal: per('heapTotal'), heapUsed: per('heapUsed'), anonBefore: r.before.anon, anonAfter: r.after.anon }
  })
} else {
  runPeer(peer)
}
