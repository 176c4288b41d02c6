// Area 4 — faulty handlers. Every handler (open, data, drain, end, close, error, timeout,
// connectError) throws — or returns a rejected promise, or (open, data) returns an Error — at
// every call, on the client side and on the server side, with and without an `error` handler.
// Each scenario is one connection that moves a random payload each way (the receivers pause
// for 30 ms after open so the senders hit backpressure and get `drain`), then closes.
// process.on('uncaughtException') / ('unhandledRejection') count what reaches them, by scenario.
// Expected (spec §5.4, §5.7, §2.3, Q6):
//   throw, with `error` handler    -> error(socket, X) once per throw (same object), nothing global
//   throw, no `error` handler      -> uncaughtException(X) once per throw
//   rejected promise               -> unhandledRejection(X) once per call, never `error`
//   `error` itself throws/rejects  -> uncaughtException / unhandledRejection
//   open throws / returns an Error -> error (or uncaught), socket closed, connect() still resolves
//   data returns an Error          -> ignored
//   connectError throws X          -> connect() rejects with X; rejects -> connect() rejects with
//                                     the connect error and X is an unhandled rejection
// and in every scenario: no crash; sockets that stay open deliver every byte (sha256 both ways);
// readyState is 1 in open/data/drain/end/timeout and -1 in close and after it; close runs exactly
// once per side; `this === socket`; end() whose own close handler throws still returns 0.
import { createHash, randomBytes } from 'node:crypto'
import {
  check, figure, table, note, runArea, quick, argValue, connect, listen, sleep, now, waitFor, describe,
} from './lib.mjs'

const SMALL = quick ? 256 * 1024 : 1024 * 1024
const BIG = quick ? 8 * 1024 * 1024 : 32 * 1024 * 1024 // for drain targets: must exceed the socket buffers
const CONCURRENCY = 6
const SCENARIO_MS = 15000

const byTag = new Map()
let strayUncaught = []
let strayUnhandled = []
process.on('uncaughtException', (err) => {
  const st = err?.tag !== undefined ? byTag.get(err.tag) : null
  if (st) st.uncaught.push(err)
  else strayUncaught.push(err)
})
process.on('unhandledRejection', (err) => {
  const st = err?.tag !== undefined ? byTag.get(err.tag) : null
  if (st) st.unhandled.push(err)
  else strayUnhandled.push(err)
})

function scenarios() {
  const list = []
  const sides = ['client', 'server']
  for (const side of sides) {
    for (const target of ['open', 'data', 'drain', 'end', 'close', 'close-own', 'timeout']) {
      const modes = ['throw', 'reject', ...(target === 'open' || target === 'data' ? ['returnError'] : [])]
      for (const mode of modes) for (const errorHandler of [true, false]) list.push({ side, target, mode, errorHandler })
    }
    for (const mode of ['throw', 'reject']) list.push({ side, target: 'error', mode, errorHandler: true })
  }
  for (const mode of ['throw', 'reject']) list.push({ side: 'client', target: 'connectError', mode, errorHandler: false })
  return list
}

function withTimeoutRes(p) {
  return Promise.race([p, sleep(SCENARIO_MS).then(() => [['completes without hanging', false, `over ${SCENARIO_MS} ms`]])])
}

function name(sc) {
  if (sc.label) return sc.label
  return `${sc.side} ${sc.target} ${sc.mode}${sc.target === 'error' ? '' : sc.errorHandler ? ', with error handler' : ', no error handler'}`
}

async function runConnectError(sc, tag, st) {
  // connect to a port nothing listens on
  const tmp = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = tmp.port
  tmp.stop()
  let invoked = 0
  let rsInside
  let thisOk = true
  let fault
  const p = connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data() {},
      connectError(s, err) {
        invoked++
        rsInside = s.readyState
        if (this !== s) thisOk = false
        fault = Object.assign(new Error(`fault ${tag}`), { tag })
        if (sc.mode === 'throw') throw fault
        return Promise.reject(fault)
      },
    },
  })
  let rejection
  try {
    await p
  } catch (e) {
    rejection = e
  }
  await sleep(50)
  const res = []
  res.push(['connectError ran once on a dead socket, this === socket', invoked === 1 && rsInside === -1 && thisOk, `invoked ${invoked}, readyState ${rsInside}`])
  if (sc.mode === 'throw') {
    res.push(['connect() rejects with the thrown error; nothing global', rejection === fault && st.uncaught.length === 0 && st.unhandled.length === 0, `rejection ${describe(rejection)}, uncaught ${st.uncaught.length}, unhandled ${st.unhandled.length}`])
  } else {
    res.push(['connect() rejects with the ECONNREFUSED error; the handler rejection is unhandled', rejection?.code === 'ECONNREFUSED' && st.unhandled.length === 1 && st.unhandled[0] === fault && st.uncaught.length === 0, `rejection ${describe(rejection)}, unhandled ${st.unhandled.length}, uncaught ${st.uncaught.length}`])
  }
  return res
}

async function runScenario(sc, tag) {
  const st = { uncaught: [], unhandled: [] }
  byTag.set(tag, st)
  if (sc.target === 'connectError') return runConnectError(sc, tag, st)

  const targetSide = sc.side
  const closer = sc.target === 'close-own' ? targetSide : targetSide === 'client' ? 'server' : 'client'
  const openFault = sc.target === 'open' && sc.mode !== 'reject'
  const size = (who) => (openFault ? 0 : sc.target === 'drain' && who === targetSide ? BIG : SMALL)
  const faults = [] // fault errors produced
  const trigger = { err: null }
  const side = {}
  const problems = []
  for (const who of ['client', 'server']) {
    const payload = randomBytes(size(who))
    side[who] = {
      who,
      payload,
      sentHash: createHash('sha256').update(payload).digest('hex'),
      recvHash: createHash('sha256'),
      received: 0,
      expect: size(who === 'client' ? 'server' : 'client'),
      written: 0,
      writeDone: payload.length === 0,
      opened: 0,
      closed: 0,
      closeErr: undefined,
      errorCalls: [],
      invoked: 0,
      timeoutFired: false,
      badReadyState: [],
      thisBad: 0,
      socket: null,
      endReturn: undefined,
      endThrew: null,
      drains: 0,
    }
  }
  const other = (who) => (who === 'client' ? 'server' : 'client')
  function pump(me, s) {
    while (me.written < me.payload.length) {
      const chunk = Math.min(65536, me.payload.length - me.written)
      const n = s.write(me.payload, me.written, chunk)
      if (n < 0) return // closed: checked through the byte counts
      me.written += n
      if (n < chunk) return
    }
    me.writeDone = true
    maybeClose()
  }
  function maybeClose() {
    const me = side[closer]
    const s = me.socket
    if (!s || s.readyState !== 1 || me.closing) return
    if (!me.writeDone || me.received < me.expect) return
    if (sc.target === 'timeout' && !side[targetSide].timeoutFired) return
    me.closing = true
    try {
      me.endReturn = s.end()
    } catch (e) {
      me.endThrew = e
    }
  }
  function makeFault(kind) {
    const e = Object.assign(new Error(`${kind} ${tag} (${name(sc)})`), { tag })
    return e
  }
  function handlersFor(who) {
    const me = side[who]
    const isTarget = who === targetSide
    const expectRs = (ev, s) => {
      const want = ev === 'close' ? -1 : 1
      if (s.readyState !== want) me.badReadyState.push(`${ev}:${s.readyState}`)
    }
    const base = {
      open(s) {
        me.socket = s
        me.opened++
        expectRs('open', s)
        if (isTarget && sc.target === 'timeout') {
          me.timeoutArmedAt = now()
          s.timeout(1)
        }
        s.pause()
        setTimeout(() => s.readyState === 1 && s.resume(), 30)
        pump(me, s)
      },
      data(s, d) {
        expectRs('data', s)
        me.received += d.length
        me.recvHash.update(d)
        maybeClose()
      },
      drain(s) {
        me.drains++
        expectRs('drain', s)
        pump(me, s)
      },
      end(s) {
        expectRs('end', s)
      },
      close(s, err) {
        me.closed++
        me.closeErr = err
        me.closeArgc = arguments.length
        expectRs('close', s)
        setTimeout(() => {
          if (s.readyState !== -1) me.badReadyState.push(`after close:${s.readyState}`)
        }, 0)
      },
      timeout(s) {
        expectRs('timeout', s)
        me.timeoutFiredAfter = now() - me.timeoutArmedAt
        me.timeoutFired = true
        maybeClose()
      },
    }
    const h = {}
    for (const [ev, fn] of Object.entries(base)) {
      const faulty = isTarget && (ev === sc.target || (ev === 'close' && sc.target === 'close-own'))
      h[ev] = function (s, ...rest) {
        if (this !== s) me.thisBad++
        fn(s, ...rest)
        if (isTarget && sc.target === 'error' && ev === 'data' && !trigger.err) {
          trigger.err = makeFault('trigger')
          throw trigger.err
        }
        if (!faulty) return
        me.invoked++
        const f = makeFault('fault')
        faults.push(f)
        if (sc.mode === 'throw') throw f
        if (sc.mode === 'reject') return (async () => { throw f })()
        return f // returnError
      }
    }
    if (isTarget && (sc.errorHandler || sc.target === 'error')) {
      h.error = function (s, err) {
        if (this !== s) me.thisBad++
        me.errorCalls.push(err)
        if (sc.target === 'error') {
          me.invoked++
          const f = makeFault('fault')
          faults.push(f)
          if (sc.mode === 'throw') throw f
          return (async () => { throw f })()
        }
      }
    } else if (!isTarget) {
      h.error = function (s, err) {
        me.errorCalls.push(err) // any call here is unexpected (checked below)
      }
    }
    return h
  }

  const l = listen({ hostname: '127.0.0.1', port: 0, socket: handlersFor('server') })
  let resolved = null
  let rejected = null
  const cp = connect({ hostname: '127.0.0.1', port: l.port, socket: handlersFor('client') }).then(
    (s) => (resolved = s),
    (e) => (rejected = e),
  )
  const t0 = now()
  const finished = await waitFor(() => side.client.closed && side.server.closed && (resolved || rejected), SCENARIO_MS)
  await cp
  await sleep(30) // let unhandled rejections be reported
  l.stop(true)
  const res = []
  const c = side.client
  const s = side.server
  const T = side[targetSide]
  const P = side[other(targetSide)]
  res.push(['completes (both sides closed) without hanging', finished, `${(now() - t0).toFixed(0)} ms; client closed ${c.closed}, server closed ${s.closed}`])
  res.push(['close ran exactly once on each side, with 2 arguments', c.closed === 1 && s.closed === 1 && c.closeArgc === 2 && s.closeArgc === 2, `client ${c.closed} (${c.closeArgc} args), server ${s.closed} (${s.closeArgc} args)`])
  res.push(['connect() resolved', !!resolved && !rejected, rejected ? describe(rejected) : ''])
  res.push(['the faulty handler was invoked', T.invoked >= 1, `${T.invoked} calls`])
  const bad = [...c.badReadyState.map((x) => 'client ' + x), ...s.badReadyState.map((x) => 'server ' + x)]
  res.push(['readyState 1 in open/data/drain/end/timeout, -1 in and after close; this === socket', bad.length === 0 && c.thisBad + s.thisBad === 0, `${bad.slice(0, 6).join(', ')}${c.thisBad + s.thisBad ? ` this mismatches ${c.thisBad + s.thisBad}` : ''}`])
  res.push(['peer side: error handler never called', P.errorCalls.length === 0, P.errorCalls.map(describe).join('; ')])

  // routing
  const n = faults.length
  const routedToError = T.errorCalls.filter((e) => faults.includes(e)).length
  const sameUncaught = st.uncaught.filter((e) => faults.includes(e)).length
  const sameUnhandled = st.unhandled.filter((e) => faults.includes(e)).length
  const detail = `faults ${n}, to error ${routedToError}, uncaught ${st.uncaught.length}, unhandled ${st.unhandled.length}`
  if (sc.target === 'error') {
    res.push(['the triggering throw (from data) reached the error handler once', T.errorCalls.length === 1 && T.errorCalls[0] === trigger.err, `error calls ${T.errorCalls.length}`])
    if (sc.mode === 'throw') res.push(['error handler throw -> uncaughtException', sameUncaught === n && st.unhandled.length === 0 && st.uncaught.length === n, detail])
    else res.push(['error handler rejection -> unhandledRejection', sameUnhandled === n && st.uncaught.length === 0 && st.unhandled.length === n, detail])
  } else if (sc.mode === 'throw' || (sc.mode === 'returnError' && sc.target === 'open')) {
    if (sc.errorHandler) res.push([`${sc.mode} -> error(socket, X) once per fault, nothing global`, routedToError === n && T.errorCalls.length === n && st.uncaught.length === 0 && st.unhandled.length === 0, detail])
    else res.push([`${sc.mode} -> uncaughtException(X) once per fault`, sameUncaught === n && st.uncaught.length === n && st.unhandled.length === 0, detail])
  } else if (sc.mode === 'reject') {
    res.push(['rejection -> unhandledRejection once per call, never error', sameUnhandled === n && st.unhandled.length === n && T.errorCalls.length === 0 && st.uncaught.length === 0, detail])
  } else {
    res.push(['returned Error (data) is ignored', T.errorCalls.length === 0 && st.uncaught.length === 0 && st.unhandled.length === 0, detail])
  }

  if (openFault) {
    if (targetSide === 'client') res.push(['open fault: connect() still resolves, with a closed socket', resolved?.readyState === -1, `readyState ${resolved?.readyState}`])
    else res.push(['open fault on the server: the client sees its socket closed', c.closed === 1, ''])
  } else {
    const okC = c.received === c.expect && c.recvHash.digest('hex') === s.sentHash
    const okS = s.received === s.expect && s.recvHash.digest('hex') === c.sentHash
    res.push(['every byte delivered both ways (sha256)', okC && okS, `client got ${c.received}/${c.expect}, server got ${s.received}/${s.expect}`])
    res.push(['no close error (orderly close)', !c.closeErr && !s.closeErr, `${describe(c.closeErr)} / ${describe(s.closeErr)}`])
    if (sc.target === 'timeout') res.push(['timeout(1) fired once, no earlier than 1 s', T.invoked === 1 && T.timeoutFiredAfter >= 999, `${T.invoked} calls, after ${T.timeoutFiredAfter?.toFixed(0)} ms`])
    if (sc.target === 'drain') res.push(['drain fired on the target side (backpressure reached)', T.drains >= 1, `${T.drains} drains`])
  }
  const cl = side[closer]
  res.push(['end() returned 0 and did not throw', cl.endThrew === null && (cl.endReturn === 0 || openFault), `returned ${cl.endReturn}${cl.endThrew ? ', threw ' + describe(cl.endThrew) : ''}`])
  return res
}

// listener.stop(true) while every accepted socket's close handler throws: stop() returns
// normally, every socket is closed (its close ran inside stop), every throw is routed.
async function stopWithThrowingCloses(withError) {
  const N = 20
  const tag = `stop-${withError}`
  const st = { uncaught: [], unhandled: [] }
  byTag.set(tag, st)
  let closes = 0
  let errorCalls = 0
  const faults = []
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data() {},
      close() {
        closes++
        const f = Object.assign(new Error(`close fault ${tag}`), { tag })
        faults.push(f)
        throw f
      },
      ...(withError ? { error(s, e) { if (faults.includes(e)) errorCalls++ } } : {}),
    },
  })
  let opened = 0
  const lOpen = l
  let clientCloses = 0
  const clients = []
  for (let i = 0; i < N; i++) clients.push(await connect({ hostname: '127.0.0.1', port: lOpen.port, socket: { data() {}, close() { clientCloses++ } } }))
  await waitFor(() => false, 50)
  let threw = null
  try {
    l.stop(true)
  } catch (e) {
    threw = e
  }
  const closesInside = closes
  const errorsInside = errorCalls
  await waitFor(() => clientCloses === N, 5000)
  await sleep(30)
  const res = []
  res.push(['stop(true) returned normally', threw === null, describe(threw)])
  res.push(['every server close ran inside stop(true)', closesInside === N, `${closesInside}/${N}`])
  if (withError) res.push(['every close throw went to error (inside stop)', errorsInside === N && st.uncaught.length === 0, `error ${errorsInside}, uncaught ${st.uncaught.length}`])
  else res.push(['every close throw went to uncaughtException', st.uncaught.length === N, `uncaught ${st.uncaught.length}`])
  res.push(['every client saw close', clientCloses === N, `${clientCloses}/${N}`])
  return res
}

// The peer resets (terminate()); the close handler (which receives ECONNRESET) throws.
async function closeThrowsOnReset(withError) {
  const tag = `reset-${withError}`
  const st = { uncaught: [], unhandled: [] }
  byTag.set(tag, st)
  let closeErr = null
  let errorCalls = []
  let fault = null
  let rsInError
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {}, open(s) { setTimeout(() => s.terminate(), 20) } } })
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      data() {},
      close(s, err) {
        closeErr = err
        fault = Object.assign(new Error(`close fault ${tag}`), { tag })
        throw fault
      },
      ...(withError ? { error(s, e) { rsInError = s.readyState; errorCalls.push(e) } } : {}),
    },
  })
  await waitFor(() => fault !== null, 5000)
  await sleep(30)
  l.stop(true)
  const res = []
  res.push(['close ran with ECONNRESET', closeErr?.code === 'ECONNRESET', describe(closeErr)])
  if (withError) res.push(['the close throw went to error (readyState -1 inside)', errorCalls.length === 1 && errorCalls[0] === fault && rsInError === -1 && st.uncaught.length === 0, `error calls ${errorCalls.length}, readyState ${rsInError}, uncaught ${st.uncaught.length}`])
  else res.push(['the close throw went to uncaughtException', st.uncaught.length === 1 && st.uncaught[0] === fault, `uncaught ${st.uncaught.length}`])
  res.push(['socket is closed', c.readyState === -1, `${c.readyState}`])
  return res
}

// A refused connect whose promise nobody handles: with a (benign) connectError the rejection
// counts as handled; without one it is an ordinary unhandled rejection (spec §2.3).
async function unobservedRejection(withConnectError) {
  const before = strayUnhandled.length
  const tmp = listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = tmp.port
  tmp.stop()
  let called = 0
  connect({ hostname: '127.0.0.1', port, socket: { data() {}, ...(withConnectError ? { connectError() { called++ } } : {}) } }) // promise dropped
  await sleep(300)
  const got = strayUnhandled.splice(before)
  const res = []
  if (withConnectError) res.push(['connectError ran; the dropped promise raised no unhandledRejection', called === 1 && got.length === 0, `connectError ${called}, unhandled ${got.map(describe).join('; ')}`])
  else res.push(['exactly one unhandledRejection, the ECONNREFUSED error', got.length === 1 && got[0]?.code === 'ECONNREFUSED', got.map(describe).join('; ')])
  return res
}

async function main() {
  const list = scenarios()
  note(`${list.length} scenarios, ${CONCURRENCY} at a time; payload ${SMALL} B (drain targets ${BIG} B)`)
  const results = new Array(list.length)
  let next = 0
  const t0 = now()
  async function lane() {
    while (next < list.length) {
      const i = next++
      try {
        results[i] = await runScenario(list[i], i)
      } catch (e) {
        results[i] = [['scenario ran', false, String(e?.stack ?? e)]]
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane))
  const extra = [
    ['listener.stop(true), 20 server close handlers throw, with error handler', () => stopWithThrowingCloses(true)],
    ['listener.stop(true), 20 server close handlers throw, no error handler', () => stopWithThrowingCloses(false)],
    ['client close throws after a peer reset, with error handler', () => closeThrowsOnReset(true)],
    ['client close throws after a peer reset, no error handler', () => closeThrowsOnReset(false)],
    ['refused connect, promise dropped, with connectError', () => unobservedRejection(true)],
    ['refused connect, promise dropped, no connectError', () => unobservedRejection(false)],
  ]
  for (const [n, f] of extra) {
    list.push({ label: n })
    try {
      results.push(await withTimeoutRes(f()))
    } catch (e) {
      results.push([['scenario ran', false, String(e?.stack ?? e)]])
    }
  }
  await sleep(100)
  const rows = []
  let failedScenarios = 0
  for (let i = 0; i < list.length; i++) {
    const failed = results[i].filter(([, ok]) => !ok)
    if (failed.length) failedScenarios++
    rows.push([name(list[i]), failed.length ? 'FAIL: ' + failed.map(([n, , d]) => `${n} (${d})`).join('; ') : 'ok'])
    // one check per scenario (details list what failed)
    check(`scenario: ${name(list[i])}`, failed.length === 0, failed.length ? failed.map(([n, , d]) => `${n}: ${d}`).join(' | ') : `${results[i].length} assertions`)
  }
  check('no error reached the process handlers outside its scenario', strayUncaught.length === 0 && strayUnhandled.length === 0, `uncaught ${strayUncaught.map(describe).join('; ')}; unhandled ${strayUnhandled.map(describe).join('; ')}`)
  figure('scenarios', list.length)
  figure('scenarios failing', failedScenarios)
  figure('duration', +((now() - t0) / 1000).toFixed(1), 's')
  table('Faulty-handler scenarios', ['scenario', 'result'], rows)
}

runArea(main)
