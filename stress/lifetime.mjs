// Area 7 — lifetime.
//  A) 100 worker_threads, 4 at a time, each with open sockets (TCP and unix, to its
//     own listeners and to a listener on the main thread), two listeners, a socket in
//     backpressure, an armed timeout, a connect pending in SYN_SENT (to a "blackhole": a
//     listener whose accept queue is full, held by a child process whose event loop is
//     blocked), and pending DNS connects to 'localhost'; ended in turn by terminate() in the
//     middle of its setup (listeners up, connects in flight), right after 'ready', 20 ms after
//     'ready', while it is busy inside a bunnet `data` handler, or by the worker itself
//     (process.exit() / an uncaught throw). (Not done:
//     terminate() on 'online', before the worker's module has loaded: Node 20's ESM loader then
//     sometimes leaks the fd of the module file it was reading, which is not bunnet's.) Checks: the process survives, every worker
//     exits, the main thread's sockets to the workers all close, and the fd count returns to its
//     value after a warm-up worker (the shared resolver runtime starts once).
//  B) child processes: only unref'd sockets -> exits by itself within 3 s; the accepted socket
//     not unref'd -> stays alive; a pending connect (SYN_SENT) keeps an otherwise idle process
//     alive until it settles, and so does a pending 'localhost' connect; process.exit() with
//     busy sockets and name resolutions in flight exits cleanly.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import {
  check, figure, note, runArea, quick, argValue, connect, listen, sleep, now, waitFor, fdCount, fullGc, describe, fdDescribe, fdDiff, exitWithParent,
} from './lib.mjs'

const WORKERS = Number(argValue('--workers', 100)) // ~3 s: the same in quick mode
const SELF = fileURLToPath(import.meta.url)
const role = argValue('--role', 'main')

// ---- worker body ---------------------------------------------------------------------------
async function workerBody() {
  const { mainPort, blackholePort, dir, id, mode } = workerData
  const echo = { data(s, d) { s.write(d) } }
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { ...echo, open(s) { if (s.remotePort % 2 === 0) s.pause() } } })
  const u = listen({ unix: join(dir, `w${id}.sock`), socket: echo })
  const quiet = { data() {}, drain() {}, timeout() {} }
  const p1 = connect({ hostname: '127.0.0.1', port: l.port, socket: quiet })
  connect({ hostname: 'localhost', port: l.port, socket: quiet }).catch(() => {})
  parentPort.postMessage('setup') // 'terminate-setup' ends the worker here, mid-setup
  const c1 = await p1
  c1.write('x')
  c1.timeout(30)
  const c2 = await connect({ unix: u.unix, socket: quiet })
  c2.write('y')
  // 'terminate-in-handler': the worker is busy inside a bunnet data handler when terminated
  const busy = {
    ...quiet,
    data() {
      if (mode !== 'terminate-in-handler') return
      parentPort.postMessage('busy')
      const t = Date.now()
      while (Date.now() - t < 3000);
    },
  }
  const c3 = await connect({ hostname: '127.0.0.1', port: mainPort, socket: busy })
  c3.write(`hello from worker ${id}`)
  // a socket in backpressure (its peer may be paused)
  const big = Buffer.alloc(1 << 20)
  for (let i = 0; i < 64 && c1.write(big) === big.length; i++);
  // pending connects: SYN_SENT to the blackhole, and name resolution of 'localhost'
  const swallow = () => {}
  connect({ hostname: '127.0.0.1', port: blackholePort, socket: quiet }).catch(swallow)
  connect({ hostname: 'localhost', port: mainPort, socket: quiet }).then((s) => s.write('dns'), swallow)
  connect({ hostname: 'localhost', port: blackholePort, socket: quiet }).catch(swallow)
  parentPort.postMessage('ready')
  if (mode === 'exit') setTimeout(() => process.exit(0), 5)
  if (mode === 'throw') setTimeout(() => { throw new Error(`worker ${id} dies on purpose`) }, 5)
}

// ---- child-process roles for B ------------------------------------------------------------
async function childRole() {
  exitWithParent()
  const say = (s) => process.stdout.write(s + '\n')
  if (role === 'child-unrefd' || role === 'child-server-ref') {
    const l = listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open(s) { if (role === 'child-unrefd') s.unref() },
        data(s, d) { s.write(d) },
      },
    })
    l.unref()
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data(s, d) { say(`echo ${d}`) } } })
    c.unref()
    c.write('ping')
    say('ready')
  } else if (role === 'child-exit-busy') {
    // process.exit() with open sockets in backpressure and 200 'localhost' connects in flight
    const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data(s, d) { s.write(d) } } })
    const socks = []
    for (let i = 0; i < 20; i++) socks.push(await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() {} } }))
    for (let i = 0; i < 200; i++) connect({ hostname: 'localhost', port: l.port, socket: { data() {} } }).catch(() => {})
    for (const s of socks) s.write(Buffer.alloc(1 << 20))
    const delay = Number(argValue('--delay'))
    if (delay < 0) process.exit(0)
    setTimeout(() => process.exit(0), delay)
  } else if (role === 'child-pending') {
    const host = argValue('--host')
    const port = Number(argValue('--port'))
    const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    l.unref() // an unref'd listener must not change anything
    connect({
      hostname: host,
      port,
      socket: {
        data() {},
        open(s) { say('open'); s.end() },
        connectError(s, e) { say(`connectError ${e.code}`) },
      },
    }).catch(() => {})
    say('ready')
  }
}

// ---- helpers -------------------------------------------------------------------------------
function startBlackhole() {
  const bh = spawn(process.execPath, ['-e', `
    const srv = require('net').createServer()
    srv.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(srv.address().port + '\\n')
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000) // never accept (gone after 2 min at most)
    })`], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve) => {
    bh.stdout.once('data', async (d) => {
      const port = Number(d)
      // fill the accept queue (backlog 1 holds 2); later SYNs are dropped
      const fillers = []
      for (let i = 0; i < 3; i++) fillers.push(net.connect(port, '127.0.0.1').on('error', () => {}))
      await sleep(200)
      resolve({
        port,
        stop() {
          for (const f of fillers) f.destroy()
          bh.kill('SIGKILL')
        },
      })
    })
  })
}

function runChild(args) {
  const c = spawn(process.execPath, [SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const st = { out: [], exit: null, exitAt: null, readyAt: null, child: c }
  let buf = ''
  c.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      st.out.push(line)
      if (line === 'ready') st.readyAt = now()
    }
  })
  c.on('exit', (code, sig) => {
    st.exit = { code, sig }
    st.exitAt = now()
  })
  return st
}

// ---- A) workers ----------------------------------------------------------------------------
async function workers(dir) {
  const bh = await startBlackhole()
  let mainOpen = 0
  let mainClose = 0
  const mainL = listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open() { mainOpen++ },
      data(s, d) { s.write(d) },
      close() { mainClose++ },
      error() {},
    },
  })
  const results = { exited: 0, hung: 0, codes: new Map(), errors: 0, readyCount: 0 }
  const modes = argValue('--modes', 'terminate-setup,terminate-ready,terminate-later,exit,terminate-in-handler,throw').split(',')
  function runWorker(id, mode) {
    return new Promise((resolve) => {
      const w = new Worker(SELF, { workerData: { role: 'worker', mainPort: mainL.port, blackholePort: bh.port, dir, id, mode }, stdout: false })
      let done = false
      let killTimer = null
      const end = (how) => {
        if (done) return
        done = true
        clearTimeout(killTimer)
        results.exited++
        results.codes.set(how, (results.codes.get(how) ?? 0) + 1)
        resolve()
      }
      const guard = () => {
        killTimer = setTimeout(() => {
          results.hung++
          end('hung')
        }, 10000)
      }
      w.on('online', () => {
        // (terminate() here, before the module loaded, is not done: see the header)
      })
      w.on('message', (m) => {
        if (m === 'busy' && mode === 'terminate-in-handler') w.terminate()
        if (m === 'setup' && mode === 'terminate-setup') {
          w.terminate()
          guard()
        }
        if (m !== 'ready') return
        results.readyCount++
        if (mode === 'terminate-ready') {
          w.terminate()
          guard()
        } else if (mode === 'terminate-later') {
          setTimeout(() => w.terminate(), 20)
          guard()
        } else if (mode !== 'terminate-setup') guard()
      })
      w.on('error', (e) => {
        results.errors++
        if (!String(e?.message).includes('dies on purpose')) note(`worker ${id} error: ${describe(e)}`)
      })
      w.on('exit', (code) => end(`exit ${code}`))
    })
  }
  // warm-up worker, then the baseline
  await runWorker(-1, 'terminate-ready')
  await waitFor(() => mainClose === mainOpen, 3000)
  await sleep(100)
  await fullGc()
  const fdStart = fdCount()
  const fdStartDesc = fdDescribe()
  note(`fd baseline after the warm-up worker: ${fdStart}`)
  const t0 = now()
  let next = 0
  const lane = async () => {
    while (next < WORKERS) {
      const id = next++
      await runWorker(id, modes[id % modes.length])
    }
  }
  await Promise.all(Array.from({ length: 4 }, lane))
  const secs = (now() - t0) / 1000
  const closedAll = await waitFor(() => mainClose === mainOpen, 5000)
  await fullGc()
  const settled = await waitFor(() => fdCount() <= fdStart, 5000)
  const fdEnd = fdCount()
  const fdEndDesc = fdDescribe()
  const leftFiles = readdirSync(dir).filter((f) => f.startsWith('w'))
  mainL.stop(true)
  bh.stop()
  figure('A) workers run', WORKERS)
  figure('A) duration', +secs.toFixed(1), 's')
  figure('A) exits', [...results.codes].map(([k, v]) => `${k}: ${v}`).join(', '))
  figure('A) unix socket files left by ended workers (listeners never stopped)', leftFiles.length)
  check('A) every worker exited (none hung for 10 s after terminate/exit)', results.exited === WORKERS + 1 && results.hung === 0, `${results.exited - 1}/${WORKERS} exited, ${results.hung} hung`)
  const wantReady = Array.from({ length: WORKERS }, (_, i) => modes[i % modes.length]).filter((m) => m !== 'terminate-setup').length
  check('A) every worker not ended mid-setup reached ready (all its sockets up)', results.readyCount - 1 >= wantReady, `${results.readyCount - 1} ready, ${wantReady} expected at least (a worker terminated mid-setup may still get there)`)
  check('A) every main-thread socket to a worker closed', closedAll, `${mainOpen} opened, ${mainClose} closed`)
  check('A) fd count back to its start after the workers', settled && fdEnd === fdStart, `${fdStart} -> ${fdEnd}${fdEnd !== fdStart ? '; changed: ' + fdDiff(fdStartDesc, fdEndDesc) : ''}`)
  // the main thread still works
  const echoed = await new Promise((resolve) => {
    const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data(s, d) { s.write(d) } } })
    connect({ hostname: 'localhost', port: l.port, socket: { data(s, d) { s.end(); l.stop(true); resolve(String(d)) } } }).then((s) => s.write('ok'), (e) => resolve(describe(e)))
    setTimeout(() => resolve('timeout'), 3000)
  })
  check('A) afterwards the main thread still connects (by name) and echoes', echoed === 'ok', echoed)
}

// ---- B) process lifetime -------------------------------------------------------------------
async function processes() {
  {
    const c = runChild(['--role', 'child-unrefd'])
    await waitFor(() => c.exit !== null, 8000)
    const after = c.readyAt && c.exitAt ? c.exitAt - c.readyAt : NaN
    check('B) only unref\'d listener/sockets: the process exits by itself within 3 s', c.exit?.code === 0 && after < 3000, `exit ${JSON.stringify(c.exit)}, ${after.toFixed(0)} ms after ready, output ${JSON.stringify(c.out)}`)
    if (c.exit === null) c.child.kill('SIGKILL')
  }
  {
    const c = runChild(['--role', 'child-server-ref'])
    await waitFor(() => c.readyAt !== null, 5000)
    await sleep(1500)
    const alive = c.exit === null
    c.child.kill('SIGKILL')
    check('B) unref\'d listener and client, accepted socket not unref\'d: stays alive', alive, alive ? 'still running 1.5 s after ready' : `exited: ${JSON.stringify(c.exit)}`)
  }
  {
    const bh = await startBlackhole()
    const c = runChild(['--role', 'child-pending', '--host', '127.0.0.1', '--port', String(bh.port)])
    await waitFor(() => c.readyAt !== null, 5000)
    await sleep(1500)
    const alive = c.exit === null
    const releasedAt = now()
    bh.stop() // the next SYN retransmission is refused
    await waitFor(() => c.exit !== null, 10000)
    if (c.exit === null) c.child.kill('SIGKILL')
    check('B) a pending connect (SYN_SENT) keeps an idle process alive', alive, alive ? 'still running 1.5 s after ready' : `exited early: ${JSON.stringify(c.exit)}, output ${JSON.stringify(c.out)}`)
    check('B) ...and the process exits once it settles (connectError ran)', c.exit?.code === 0 && c.out.some((l) => l.startsWith('connectError') || l === 'open'), `${JSON.stringify(c.out)}, exit ${JSON.stringify(c.exit)} ${c.exitAt ? (c.exitAt - releasedAt).toFixed(0) + ' ms after release' : ''}`)
  }
  {
    const bad = []
    for (const delay of [-1, 0, 1, 2, 5, -1, 0, 1]) {
      const c = runChild(['--role', 'child-exit-busy', '--delay', String(delay)])
      await waitFor(() => c.exit !== null, 8000)
      if (c.exit === null) c.child.kill('SIGKILL')
      if (c.exit?.code !== 0) bad.push(`delay ${delay}: ${JSON.stringify(c.exit)}`)
    }
    check('B) process.exit() with busy sockets and 200 pending \'localhost\' connects: clean exit, 8 runs', bad.length === 0, bad.join('; '))
  }
  {
    const tmp = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const port = tmp.port
    tmp.stop()
    const c = runChild(['--role', 'child-pending', '--host', 'localhost', '--port', String(port)])
    await waitFor(() => c.exit !== null, 8000)
    if (c.exit === null) c.child.kill('SIGKILL')
    check('B) a pending \'localhost\' connect keeps the process alive until it settles', c.exit?.code === 0 && c.out.includes('connectError ECONNREFUSED'), `${JSON.stringify(c.out)}, exit ${JSON.stringify(c.exit)}`)
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'bunnet-lifetime-'))
  try {
    await workers(dir)
    await processes()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (!isMainThread && workerData?.role === 'worker') workerBody().catch((e) => { throw e })
else if (role === 'main') runArea(main)
else childRole().catch((e) => { console.error(e); process.exit(1) })
