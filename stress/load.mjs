// Area 1 — load: N concurrent connections held open at once (full 10,000, quick 2,000).
// This process runs a bunnet echo listener and holds the N accepted sockets; a child process
// (this script with --role clients) holds the N bunnet client sockets, so each side has N fds
// (both in one process would exceed the 20,000 hard fd limit). Every client (every 4th one
// connecting by the name 'localhost') sends a unique message and must get exactly it back,
// twice: right after connecting, and again once all N are open, after listener.reload()
// swapped the server's handlers (the new ones must serve). Then N timers at once on the client
// side (timeout(1); timeout(1) then timeout(0); timeout(5) then timeout(2)): each fires once,
// never early, disarmed ones never, re-armed ones at the new time.
// Figures: connections held, peak RSS, bytes per connection on both sides.
// Needs the soft fd limit raised to the hard one (run.mjs, or running this file by hand, does
// `bash -c 'ulimit -n $(ulimit -Hn); exec node --expose-gc stress/load.mjs'`).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import {
  check, figure, note, runArea, quick, argValue, connect, listen, fullGc, rss, peakRss, fdCount,
  sleep, now, until, fmtBytes, prng, seedFromArgs, nodeErrorProblem, exitWithParent,
} from './lib.mjs'

const N = Number(argValue('--conns', quick ? 2000 : 10000))
const role = argValue('--role', 'server')
const IN_FLIGHT = 200 // connects pending at once (the listen backlog is 1024)

function softFdLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
  return Number(line.split(/\s+/)[3])
}

/** Line-oriented stdin/stdout RPC between the two processes. */
function lines(stream) {
  const rl = createInterface({ input: stream })
  const queue = []
  const waiters = []
  rl.on('line', (l) => (waiters.length ? waiters.shift()(l) : queue.push(l)))
  rl.on('close', () => { while (waiters.length) waiters.shift()(null) })
  return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)))
}

// ---------------------------------------------------------------------------------------------
// Client role: holds N bunnet client connections.
async function clients() {
  exitWithParent()
  const port = Number(argValue('--port'))
  const seed = Number(argValue('--seed'))
  const rnd = prng(seed)
  const next = lines(process.stdin)
  const send = (o) => process.stdout.write(JSON.stringify(o) + '\n')
  // Warm-up connection: the per-environment reactor (its epoll fd) starts on first use.
  // (and the shared resolver runtime, on the first name lookup)
  const warm = await connect({ hostname: 'localhost', port, socket: { data() {} } })
  warm.end()
  await fullGc()
  const rssBase = rss()
  const fdBase = fdCount()
  const socks = new Array(N)
  let connectErrors = 0
  let firstConnectError = null
  let mismatches = 0
  let closesEarly = 0
  let phase = 'hold'
  const handlers = {
    data(s, d) {
      const st = s.data
      st.got += d.toString('latin1')
      if (st.got.length >= st.expect.length) {
        if (st.got !== st.expect) mismatches++
        st.done = true
        st.resolve?.()
      }
    },
    close(s) {
      if (phase === 'hold') closesEarly++
    },
    timeout(s) {
      const st = s.data
      st.fired++
      st.firedAfter = now() - st.armedAt
    },
  }
  const message = (i, round) => `${round}:${i}:${rnd.int(0, 2 ** 31)}:${'x'.repeat(rnd.int(0, 64))}\n`
  function exchange(s, i, round) {
    const st = s.data
    st.got = ''
    st.done = false
    st.expect = message(i, round)
    const p = new Promise((r) => (st.resolve = r))
    const n = s.write(st.expect)
    if (n !== st.expect.length) throw new Error(`client ${i}: short write ${n}/${st.expect.length} of a tiny message`)
    return p
  }
  const t0 = now()
  let nextIdx = 0
  async function lane() {
    while (nextIdx < N) {
      const i = nextIdx++
      try {
        // every 4th by name: N/4 lookups through the resolver thread while the rest connect
        const s = await connect({ hostname: i % 4 === 0 ? 'localhost' : '127.0.0.1', port, socket: handlers, data: { i } })
        socks[i] = s
        await exchange(s, i, 1)
      } catch (e) {
        connectErrors++
        firstConnectError ??= `${e?.code} ${e?.message} ${nodeErrorProblem(e)}`
      }
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
  const connectMs = now() - t0
  await fullGc()
  const rssHeld = rss()
  send({ kind: 'connected', connectMs, connectErrors, firstConnectError, mismatches, rssBase, rssHeld, peak: peakRss(), fdBase, fdHeld: fdCount(), open: socks.filter((s) => s?.readyState === 1).length })
  for (let cmd; (cmd = await next()) !== null; ) {
    if (cmd === 'round2') {
      const t1 = now()
      const before = mismatches
      await Promise.all(socks.map((s, i) => (s && s.readyState === 1 ? exchange(s, i, 2) : null)))
      send({ kind: 'round2', ms: now() - t1, mismatches: mismatches - before, closesEarly, open: socks.filter((s) => s?.readyState === 1).length })
    } else if (cmd === 'timers') {
      // N timers at once: i%3==0 timeout(1); i%3==1 timeout(1) then timeout(0) (disarmed);
      // i%3==2 timeout(5) then timeout(2) (re-armed: fires at 2 s, not 5)
      const t1 = now()
      socks.forEach((s, i) => {
        if (!s) return
        s.data.fired = 0
        s.data.armedAt = now()
        if (i % 3 === 0) s.timeout(1)
        else if (i % 3 === 1) {
          s.timeout(1)
          s.timeout(0)
        } else {
          s.timeout(5)
          s.timeout(2)
        }
      })
      await sleep(3500)
      const g = [0, 1, 2].map(() => ({ n: 0, once: 0, never: 0, more: 0, early: 0, min: Infinity, max: 0 }))
      socks.forEach((s, i) => {
        if (!s) return
        const x = g[i % 3]
        const st = s.data
        x.n++
        if (st.fired === 0) x.never++
        else if (st.fired === 1) x.once++
        else x.more++
        if (st.fired) {
          if (st.firedAfter < (i % 3 === 0 ? 1000 : 2000) - 1) x.early++
          x.min = Math.min(x.min, st.firedAfter)
          x.max = Math.max(x.max, st.firedAfter)
        }
      })
      send({ kind: 'timers', ms: now() - t1, groups: g })
    } else if (cmd === 'close') {
      phase = 'closing'
      let ends = 0
      for (const s of socks) if (s && s.end() === 0) ends++
      await fullGc()
      send({ kind: 'closed', ends, open: socks.filter((s) => s?.readyState === 1).length, fdAfter: fdCount(), fdBase })
    } else if (cmd === 'exit') {
      process.exit(0)
    }
  }
  process.exit(1) // stdin closed: the area is gone
}

// ---------------------------------------------------------------------------------------------
// Server role (the area itself).
async function server() {
  const limit = softFdLimit()
  figure('soft fd limit', limit)
  if (!check('soft fd limit allows N connections per process', limit >= N + 200, `limit ${limit}, N ${N}`)) return
  const seed = seedFromArgs()
  note(`seed ${seed}, N ${N}`)
  await fullGc()
  const rssBase = rss()
  let opened = 0
  let closed = 0
  let closeErrors = 0
  let serverMismatch = 0
  let reloaded = false
  let oldAfter = 0
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open() { opened++ },
      data(s, d) {
        if (reloaded) oldAfter++
        const n = s.write(d)
        if (n !== d.length) serverMismatch++
      },
      close(s, err) {
        closed++
        if (err) closeErrors++
      },
    },
  })
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--role', 'clients', '--port', String(l.port), '--seed', String(seed), '--conns', String(N)], { stdio: ['pipe', 'pipe', 'inherit'] })
  let childExit = null
  child.on('exit', (code, sig) => (childExit = { code, sig }))
  const next = lines(child.stdout)
  const recv = async (kind) => {
    let line = await next()
    while (line !== null && line.startsWith('#')) line = await next() // the child's header line
    if (line === null) throw new Error(`client process ended (${JSON.stringify(childExit)}) before sending ${kind}`)
    const o = JSON.parse(line)
    if (o.kind !== kind) throw new Error(`expected ${kind}, got ${line}`)
    return o
  }
  const c = await recv('connected')
  note(`connected ${N} in ${(c.connectMs / 1000).toFixed(1)} s`)
  check('every client connected', c.connectErrors === 0, `${c.connectErrors} connect errors${c.firstConnectError ? ', first: ' + c.firstConnectError : ''}`)
  check('every client got its unique message echoed (round 1)', c.mismatches === 0 && c.open === N, `${c.mismatches} mismatches, ${c.open}/${N} open`)
  await until(() => opened >= N + 1 - c.connectErrors, 10000, 'server opens').catch(() => {})
  await fullGc()
  const rssHeld = rss()
  const held = opened - closed
  check('server holds N accepted sockets at once', held === N, `${held} held`)
  figure('connections held (each side)', held)
  figure('connect time for N (200 in flight)', +(c.connectMs / 1000).toFixed(2), 's')
  // Swap the listener's handlers while N sockets are open: round 2 must be served by the new set.
  let newData = 0
  l.reload({
    socket: {
      open() { opened++ },
      data(s, d) {
        newData++
        const n = s.write(d)
        if (n !== d.length) serverMismatch++
      },
      close(s, err) {
        closed++
        if (err) closeErrors++
      },
    },
  })
  reloaded = true
  const r2wait = now()
  child.stdin.write('round2\n')
  const r2 = await recv('round2')
  check('every client got its unique message echoed again with all N open (round 2)', r2.mismatches === 0 && r2.open === N && r2.closesEarly === 0, `${r2.mismatches} mismatches, ${r2.open}/${N} open, ${r2.closesEarly} unexpected closes, ${(now() - r2wait).toFixed(0)} ms`)
  figure('round 2: N concurrent echoes', Math.round(r2.ms), 'ms')
  check('no server write was short (tiny messages)', serverMismatch === 0, `${serverMismatch}`)
  check('listener.reload() with N open sockets: round 2 served by the new handlers only', newData >= N && oldAfter === 0, `new data calls ${newData}, old handler calls after reload ${oldAfter}`)
  child.stdin.write('timers\n')
  const tm = await recv('timers')
  const [g0, g1, g2] = tm.groups
  const fmt = (x) => `${x.once}/${x.n} once, ${x.never} never, ${x.more} more than once, ${x.early} early${x.once + x.more ? `, after ${Math.round(x.min)}..${Math.round(x.max)} ms` : ''}`
  check('N timers: timeout(1) fired exactly once on every socket, never early', g0.once === g0.n && g0.early === 0, fmt(g0))
  check('N timers: timeout(1) then timeout(0) never fired', g1.never === g1.n, fmt(g1))
  check('N timers: timeout(5) then timeout(2) fired once, at 2 s not 5 s', g2.once === g2.n && g2.early === 0 && g2.max < 4000, fmt(g2))
  figure('timers: timeout(1) fire delay (min..max over N/3 sockets)', `${Math.round(g0.min)}..${Math.round(g0.max)} ms`)
  const sPer = (rssHeld - rssBase) / N
  const cPer = (c.rssHeld - c.rssBase) / N
  figure('server: RSS held / baseline', `${fmtBytes(rssHeld)} / ${fmtBytes(rssBase)}`)
  figure('server: bytes per connection (RSS delta after gc / N)', Math.round(sPer), 'B')
  figure('client: RSS held / baseline', `${fmtBytes(c.rssHeld)} / ${fmtBytes(c.rssBase)}`)
  figure('client: bytes per connection (RSS delta after gc / N)', Math.round(cPer), 'B')
  figure('server: peak RSS', fmtBytes(peakRss()))
  figure('client: peak RSS', fmtBytes(c.peak))
  // Bounds are generous (bench: ~1.2 KB server, ~1.9 KB client); they catch gross per-connection leaks.
  check('server bytes per connection < 16 KiB', sPer < 16384, `${Math.round(sPer)} B`)
  check('client bytes per connection < 16 KiB', cPer < 16384, `${Math.round(cPer)} B`)
  check('client fds grew by ~N while holding', c.fdHeld - c.fdBase >= N && c.fdHeld - c.fdBase <= N + 20, `${c.fdHeld - c.fdBase}`)
  child.stdin.write('close\n')
  const cl = await recv('closed')
  check('client end() returned 0 for every socket and none stays open', cl.ends === N && cl.open === 0, `${cl.ends} ends, ${cl.open} open`)
  check('client fd count back to its start after closing', cl.fdAfter === cl.fdBase, `${cl.fdBase} -> ${cl.fdAfter}`)
  const allClosed = await until(() => closed >= N + 1, 15000, 'server closes').then(() => true, () => false)
  check('server saw close for every connection, none with an error', allClosed && closeErrors === 0, `${closed - 1}/${N} closed (plus the warm-up), ${closeErrors} with error`)
  child.stdin.write('exit\n')
  await until(() => childExit !== null, 5000, 'client exit').catch(() => {})
  check('client process exited cleanly', childExit?.code === 0, JSON.stringify(childExit))
  l.stop(true)
}

if (role === 'clients') clients().catch((e) => { console.error(e); process.exit(1) })
else runArea(server)
