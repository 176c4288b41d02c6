// Area 2 — churn and leaks: connect / write / echo / close cycles (full 1,000,000, quick 200,000,
// both also bounded in time: quick stops at 60 s, full at 720 s, and says so) with 16 concurrent
// lanes, one process holding both sides. Close paths rotate per cycle: client end(), client
// close(), client terminate(), server end() after the echo, and every 8th cycle goes over a unix
// socket instead of TCP. Every 5,000 cycles the listeners are replaced (new listen(), old
// stop()), so listeners churn too.
// Checks: every echo correct, every socket closed exactly once on both sides; RSS after
// global.gc() flat within ±5% (median of the second quarter of samples vs the last quarter;
// the first quarter is warm-up); /proc/self/fd count back to its start; FinalizationRegistry on
// every client socket, server socket and listener: after the run and repeated gc, at most
// TAIL_BOUND registered objects may remain unfinalized.
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  check, figure, note, runArea, quick, argValue, connect, listen, fullGc, rss, peakRss, fdCount, fdList,
  sleep, now, waitFor, fmtBytes, nodeErrorProblem,
} from './lib.mjs'

const CYCLES = Number(argValue('--cycles', quick ? 200_000 : 1_000_000))
const MAX_SECONDS = Number(argValue('--max-seconds', quick ? 60 : 720))
const LANES = 16
const SWAP_EVERY = 5000
const SAMPLES = 100
const TAIL_BOUND = 64 // documented bound for registered objects still alive after the final gc

function fdTargets() {
  const kinds = {}
  for (const f of fdList()) {
    let t
    try {
      t = readlinkSync(`/proc/self/fd/${f}`).replace(/\[\d+\]/, '')
    } catch {
      continue
    }
    kinds[t] = (kinds[t] ?? 0) + 1
  }
  return JSON.stringify(kinds)
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y)
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'bunnet-churn-'))
  let registered = { socket: 0, listener: 0 }
  let finalized = { socket: 0, listener: 0 }
  const alive = new Set()
  const registry = new FinalizationRegistry(([kind, id]) => { finalized[kind]++; alive.delete(id) })
  let nextId = 0
  const track = (obj, kind) => {
    registered[kind]++
    const id = `${kind}#${nextId++}`
    alive.add(id)
    registry.register(obj, [kind, id])
  }

  const st = {
    srvOpen: 0, srvClose: 0, srvCloseErr: 0, srvError: 0,
    cliOpen: 0, cliClose: 0, cliCloseErr: 0, cliUnexpectedErr: 0, cliError: 0,
    connectErrors: 0, firstConnectError: '', echoBad: 0, badReadyState: 0, writesShort: 0,
    done: 0, started: 0,
    failCycles: 0, connectErrorCalls: 0, failBadError: 0, failResolved: 0, failRejected: 0, selfConnects: 0, failResolvedSamples: [],
  }
  const serverHandlers = {
    open(s) {
      st.srvOpen++
      track(s, 'socket')
      if (s.readyState !== 1) st.badReadyState++
    },
    data(s, d) {
      const n = s.write(d)
      if (n !== d.length) st.writesShort++
      // the client asks the server to close first with a message starting with "S"
      if (d[0] === 0x53) s.end()
    },
    close(s, err) {
      st.srvClose++
      if (err) st.srvCloseErr++ // ECONNRESET is expected after a client terminate(): counted separately
      if (s.readyState !== -1) st.badReadyState++
    },
    error() { st.srvError++ },
  }
  let seq = 0
  function newListeners() {
    const tcp = listen({ hostname: '127.0.0.1', port: 0, socket: serverHandlers })
    const unix = listen({ unix: join(dir, `l${seq++}.sock`), socket: serverHandlers })
    track(tcp, 'listener')
    track(unix, 'listener')
    return { tcp, unix }
  }
  let cur = newListeners()
  let expectedResets = 0

  // New listeners take the next connects at once; the old ones are stopped 200 ms later, once
  // the connects already aimed at them have been accepted (stopping a listener resets what is
  // still in its accept queue, which a client may see as a failed connect).
  const stopping = new Set()
  function swap() {
    const old = cur
    cur = newListeners()
    stopping.add(old)
    setTimeout(() => {
      old.tcp.stop()
      old.unix.stop()
      stopping.delete(old)
    }, 200)
  }

  // Every 16th cycle is a failing connect (ECONNREFUSED to port 1, or ENOENT on a missing unix
  // path) with a connectError handler: the error paths must not leak either.
  function failingCycle(i) {
    return new Promise((resolve) => {
      st.failCycles++
      // (A fixed refused TCP port is not used: a concurrent run's fuzzer, as root, may bind
      // port 1; a missing unix path in our own temp dir fails the same way everywhere.)
      const target = { unix: join(dir, 'missing.sock') }
      let called = 0
      connect({
        ...target,
        socket: {
          data() {},
          connectError(s, err) {
            called++
            st.connectErrorCalls++
            if (!['ECONNREFUSED', 'ENOENT'].includes(err?.code) || nodeErrorProblem(err, { syscalls: ['connect'] })) st.failBadError++
            if (s.readyState !== -1) st.badReadyState++
            track(s, 'socket')
          },
        },
      }).then(
        (s) => {
          // Linux TCP self-connect: with 1M cycles the client's ephemeral port sometimes equals
          // the dead port, and a socket connecting to itself succeeds (simultaneous open). That
          // is the kernel, not a missed refusal; anything else is a failure.
          if (s.localPort === s.remotePort && s.remoteAddress === '127.0.0.1') st.selfConnects++
          else st.failResolved++
          if (st.failResolvedSamples.length < 5) {
            st.failResolvedSamples.push(`${target.unix ? 'unix ' + target.unix : '127.0.0.1:1'} -> readyState ${s.readyState}, remote ${s.remoteAddress}:${s.remotePort}, local ${s.localAddress}:${s.localPort}, connectError calls ${called}`)
          }
          s.terminate()
          st.done++
          resolve()
        },
        (err) => {
          st.failRejected++
          if (called !== 1) st.failBadError++
          st.done++
          resolve()
        },
      )
    })
  }

  function cycle(i) {
    if (i % 16 === 5) return failingCycle(i)
    return new Promise((resolve) => {
      const mode = i % 4 // 0 end, 1 close, 2 terminate, 3 server closes first
      const msg = `${mode === 3 ? 'S' : 'C'}${i}`
      const opts = i % 8 === 7 ? { unix: cur.unix.unix } : { hostname: '127.0.0.1', port: cur.tcp.port }
      let got = ''
      let closed = false
      const finish = () => {
        st.done++
        resolve()
      }
      connect({
        ...opts,
        socket: {
          open(s) {
            st.cliOpen++
            if (s.readyState !== 1) st.badReadyState++
            const n = s.write(msg)
            if (n !== msg.length) st.writesShort++
          },
          data(s, d) {
            got += d.toString('latin1')
            if (got.length < msg.length) return
            if (got !== msg) st.echoBad++
            if (mode === 0) s.end()
            else if (mode === 1) s.close()
            else if (mode === 2) {
              expectedResets++
              s.terminate()
            }
            // mode 3: wait for the server's end
          },
          close(s, err) {
            if (closed) st.badReadyState += 1000 // closed twice
            closed = true
            st.cliClose++
            if (err) {
              st.cliCloseErr++
              if (nodeErrorProblem(err)) st.cliUnexpectedErr++
            }
            if (s.readyState !== -1) st.badReadyState++
            finish()
          },
          error() { st.cliError++ },
        },
      }).then(
        (s) => track(s, 'socket'),
        (e) => {
          st.connectErrors++
          st.firstConnectError ||= `${e?.code} ${e?.message}`
          finish()
        },
      )
    })
  }

  // Warm-up (reactor, code paths), then baselines.
  for (let i = 0; i < 200; i++) await cycle(i)
  await fullGc()
  const fdStart = fdCount()
  const startTargets = fdTargets()
  const rssStart = rss()
  note(`start: ${fdStart} fds, rss ${fmtBytes(rssStart)}`)

  const samples = [] // { at, rss }
  const sampleEvery = Math.max(1000, Math.floor(CYCLES / SAMPLES))
  let nextSample = sampleEvery
  let nextSwap = SWAP_EVERY
  let idx = 200
  let timeBounded = false
  const t0 = now()
  const deadline = t0 + MAX_SECONDS * 1000
  let lastProgress = t0
  async function lane() {
    while (idx < CYCLES + 200) {
      if (now() > deadline) {
        timeBounded = true
        return
      }
      await cycle(idx++)
    }
  }
  const lanes = Array.from({ length: LANES }, lane)
  // Sampler / swapper runs beside the lanes.
  let running = true
  const all = Promise.all(lanes).then(() => (running = false))
  while (running) {
    await sleep(5)
    if (st.done >= nextSwap) {
      nextSwap += SWAP_EVERY
      swap() // in a plain function: a local in this async function would keep the old listeners alive
    }
    if (st.done >= nextSample) {
      nextSample += sampleEvery
      globalThis.gc()
      samples.push({ at: st.done, rss: rss() })
    }
    if (now() - lastProgress > 10000) {
      lastProgress = now()
      note(`${st.done} cycles, ${((st.done - 200) / ((now() - t0) / 1000)).toFixed(0)}/s, rss ${fmtBytes(rss())}`)
    }
  }
  await all
  await waitFor(() => stopping.size === 0, 2000)
  const secs = (now() - t0) / 1000
  const cycles = st.done - 200
  figure('cycles completed', cycles)
  figure('cycles asked', CYCLES)
  figure('time-bounded', timeBounded ? `yes (stopped at ${MAX_SECONDS} s)` : 'no')
  figure('duration', +secs.toFixed(1), 's')
  figure('rate', Math.round(cycles / secs), 'cycles/s')
  if (timeBounded) note(`time bound of ${MAX_SECONDS} s reached after ${cycles} of ${CYCLES} cycles`)

  check('no connect error', st.connectErrors === 0, `${st.connectErrors}${st.firstConnectError ? ', first: ' + st.firstConnectError : ''}`)
  check('every echo correct, no short write of a tiny message', st.echoBad === 0 && st.writesShort === 0, `${st.echoBad} bad echoes, ${st.writesShort} short writes`)
  // all server sockets must be closed too
  await waitFor(() => st.srvClose === st.srvOpen, 5000)
  check('client: open and close counts equal (close exactly once)', st.cliOpen === st.cliClose && st.cliOpen === st.done - st.failCycles, `opens ${st.cliOpen}, closes ${st.cliClose}, successful cycles ${st.done - st.failCycles}`)
  figure('failing connects (ECONNREFUSED / ENOENT) among the cycles', st.failCycles)
  const refusedCycles = st.failCycles - st.selfConnects
  check('failing connects: connectError once with a Node-shaped error, then the promise rejects', st.failRejected === refusedCycles && st.connectErrorCalls === refusedCycles && st.failBadError === 0 && st.failResolved === 0, `${st.failCycles} failing cycles (${st.selfConnects} kernel self-connects), ${st.connectErrorCalls} connectError calls, ${st.failRejected} rejections, ${st.failBadError} bad, ${st.failResolved} resolved${st.failResolvedSamples.length ? '; resolved: ' + st.failResolvedSamples.join(' | ') : ''}`)
  check('server: open and close counts equal', st.srvOpen === st.srvClose && st.srvOpen === st.cliOpen, `opens ${st.srvOpen}, closes ${st.srvClose}`)
  check('readyState 1 in open, -1 in close; no double close', st.badReadyState === 0, `${st.badReadyState}`)
  check('no handler error (error handler never called)', st.srvError === 0 && st.cliError === 0, `server ${st.srvError}, client ${st.cliError}`)
  check('client close errors are Node-shaped (none expected)', st.cliCloseErr === 0 || st.cliUnexpectedErr === 0, `${st.cliCloseErr} client closes with error, ${st.cliUnexpectedErr} malformed`)
  figure('server closes with ECONNRESET (after client terminate())', `${st.srvCloseErr} of ${expectedResets} terminates`)
  check('server close errors only after client terminate()', st.srvCloseErr <= expectedResets, `${st.srvCloseErr} > ${expectedResets}`)

  // RSS flatness.
  const q = Math.floor(samples.length / 4)
  const q2 = samples.slice(q, 2 * q).map((x) => x.rss)
  const q4 = samples.slice(3 * q).map((x) => x.rss)
  const m2 = median(q2)
  const m4 = median(q4)
  const drift = (m4 - m2) / m2
  figure('RSS samples (after gc)', samples.length)
  figure('RSS median, 2nd quarter', fmtBytes(m2))
  figure('RSS median, last quarter', fmtBytes(m4))
  figure('RSS drift (last vs 2nd quarter)', `${(drift * 100).toFixed(2)} %`)
  figure('RSS min / max over samples', `${fmtBytes(Math.min(...samples.map((x) => x.rss)))} / ${fmtBytes(Math.max(...samples.map((x) => x.rss)))}`)
  figure('peak RSS', fmtBytes(peakRss()))
  check('enough RSS samples (>= 8)', samples.length >= 8, `${samples.length}`)
  check('RSS flat within ±5% (median 2nd quarter vs last quarter)', Math.abs(drift) <= 0.05, `${(drift * 100).toFixed(2)} %`)

  // fds: same listener set as at the start (one TCP + one unix listener), all sockets closed.
  await fullGc()
  const fdEnd = fdCount()
  const endTargets = fdTargets()
  check('fd count back to its start', fdEnd === fdStart, `${fdStart} -> ${fdEnd}${fdEnd !== fdStart ? '; start: ' + startTargets + '; end: ' + endTargets : ''}`)
  cur.tcp.stop()
  cur.unix.stop()
  const fdAfterStop = fdCount()
  check('stopping the last two listeners frees their two fds', fdAfterStop === fdStart - 2, `${fdEnd} -> ${fdAfterStop}`)
  const leftFiles = readdirSync(dir)
  check('every stopped unix listener removed its socket file', leftFiles.length === 0, `${seq} unix listeners, files left: ${leftFiles.slice(0, 5).join(', ')}`)
  cur = null

  // Finalization: drop everything, gc until the registry catches up.
  let unfinalized = Infinity
  for (let i = 0; i < 40; i++) {
    await fullGc()
    await sleep(20)
    const total = registered.socket + registered.listener
    const fin = finalized.socket + finalized.listener
    unfinalized = total - fin
    if (unfinalized === 0) break
  }
  figure('registered sockets / finalized', `${registered.socket} / ${finalized.socket}`)
  figure('registered listeners / finalized', `${registered.listener} / ${finalized.listener}`)
  figure('unfinalized after gc', unfinalized)
  figure('unfinalized bound allowed (documented tail)', TAIL_BOUND)
  check(`no socket or listener left alive (at most ${TAIL_BOUND} unfinalized allowed)`, unfinalized <= TAIL_BOUND, `${unfinalized} unfinalized (sockets ${registered.socket - finalized.socket}, listeners ${registered.listener - finalized.listener})${alive.size ? ': ' + [...alive].slice(0, 8).join(', ') : ''}`)
  rmSync(dir, { recursive: true, force: true })
}

runArea(main)
