// The reactor's two readiness modes (src/poller.rs), each in a child process: registration in
// libuv's own epoll set (the default where libuv's layout is known), the nested epoll set
// (BUNNET_NESTED_EPOLL=1), and the fall-back from the first to the second with sockets already
// registered (BUNNET_NESTED_EPOLL=late). The rest of the suite runs in the default mode.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const fixture = fileURLToPath(new URL('./fixtures/poller.mjs', import.meta.url))

function run(mode, extra = {}) {
  const env = { ...process.env, NODE_DEBUG: 'bunnet', BUNNET_NESTED_EPOLL: mode, ...extra }
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [fixture], { env, timeout: 60000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr.slice(-2000)}`))
      resolve({ result: JSON.parse(stdout.trim().split('\n').pop()), log: stderr })
    })
  })
}

const expected = { echoed: [true, true, true, true, true], refusedCode: 'ECONNREFUSED' }
// The libuv versions whose layout direct mode knows (src/poller.rs, `layout`), on x86_64: Node 20
// ships 1.46.0, Node 22 and 24 ship 1.48.0-1.52.1 (1.49.0 and 1.49.1 run nested). Another libuv or
// another architecture runs nested.
const direct = process.arch === 'x64' && /^1\.(4[678]\.0|49\.2|5[01]\.0|52\.[01])$/.test(process.versions.uv)

test('direct mode (the default on this Node): echo, backpressure, pause/resume, a refused connect', async (t) => {
  const { result, log } = await run('')
  t.deepEqual(result, expected)
  t.is(log.includes('poller: direct'), direct, `libuv ${process.versions.uv}: ${log.split('\n')[0]}`)
  t.false(log.includes('failed validation'))
  // The refused connect's error event stops libuv's poll handle in direct mode.
  if (direct) t.true(log.includes('poll handle restarted after an error event'))
})

test('nested mode: the same traffic', async (t) => {
  const { result, log } = await run('1')
  t.deepEqual(result, expected)
  t.true(log.includes('poller: nested epoll set'))
})

test("with libuv's io_uring on (UV_USE_IO_URING=1): direct only where libuv never queues an EPOLL_CTL_DEL", async (t) => {
  // Before 1.49.0 libuv's epoll_ctl ring queues the DEL of an fd it stops watching mid-dispatch;
  // a socket of bunnet's given the same fd number before the ring is submitted would lose its
  // registration, so there bunnet runs nested while the ring exists (src/poller.rs, `queued_del`).
  const { result, log } = await run('', { UV_USE_IO_URING: '1' })
  t.deepEqual(result, expected)
  const queuesDel = Number(process.versions.uv.split('.')[1]) < 49
  let uring = false
  try {
    uring = readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() === '0'
  } catch {}
  if (direct && queuesDel && uring) t.true(log.includes('poller: nested epoll set'), log.split('\n')[0])
  else t.is(log.includes('poller: direct'), direct, log.split('\n')[0])
})

test('fall-back from direct to nested at the first dispatch loses nothing', async (t) => {
  t.timeout(60000)
  const { result, log } = await run('late')
  t.deepEqual(result, expected)
  if (direct) t.true(log.includes('failed validation; registrations move'))
})

test("waiting for the next event inside the poll callback still counts as idle in eventLoopUtilization()", async (t) => {
  // In direct mode a wake-up keeps waiting in libuv's epoll set for the next event (up to the
  // next timer); that wait must read as idle, as libuv's own wait does. Sparse traffic: one
  // round trip every 20 ms for ~1 s, nearly all of it spent waiting.
  const { performance } = await import('node:perf_hooks')
  const { connect, listen } = await import('../index.mjs')
  const server = listen({ hostname: '127.0.0.1', port: 0, socket: { data: (s, b) => s.write(b) } })
  let got = 0
  const sock = await connect({ hostname: '127.0.0.1', port: server.port, socket: { data: () => got++ } })
  const e0 = performance.eventLoopUtilization()
  const timer = setInterval(() => sock.write('x'), 20)
  await new Promise((r) => setTimeout(r, 1000))
  clearInterval(timer)
  const { utilization } = performance.eventLoopUtilization(e0)
  sock.end()
  server.stop(true)
  t.true(got >= 20, `round trips: ${got}`)
  t.true(utilization < 0.5, `utilization ${utilization}`)
})

test('a timer a data handler starts fires on time while the wake-up waits for the next event', async (t) => {
  // A wake-up waits in libuv's epoll set for its peer's next bytes, up to libuv's next timer, and
  // decides how long only once the last round's handlers have run: a timer one of them starts
  // must cut the wait short. The peer is another process, sending 30 bytes 40 ms apart; each
  // `data` starts a 10 ms timer. Were the wait's length fixed before the handlers ran, the timer
  // would fire only when the next byte ends the wait (~40 ms later).
  const { spawn } = await import('node:child_process')
  const { listen } = await import('../index.mjs')
  const delays = []
  const server = listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data() {
        const t0 = performance.now()
        setTimeout(() => delays.push(performance.now() - t0), 10)
      },
    },
  })
  t.teardown(() => server.stop(true))
  const peer = `const s = require('net').connect(${server.port}, '127.0.0.1', () => { let n = 0; const i = setInterval(() => { s.write('x'); if (++n === 30) { clearInterval(i); s.end() } }, 40) })`
  const child = spawn(process.execPath, ['-e', peer], { stdio: 'ignore' })
  await new Promise((r) => child.on('exit', r))
  await new Promise((r) => setTimeout(r, 100))
  t.true(delays.length >= 25, `timers fired: ${delays.length}`)
  // With the wait's length fixed too early about every other timer fired ~40 ms late; a loaded
  // machine may delay one or two on its own.
  const late = delays.filter((d) => d >= 30)
  t.true(late.length <= 2, `10 ms timers that took 30 ms or more: ${late.length} of ${delays.length} (${delays.map((d) => d.toFixed(0)).join(', ')})`)
})
