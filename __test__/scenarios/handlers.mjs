// Handler semantics: order, `this`, binaryType, errors thrown by handlers, reload (spec §5).
import net from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import { BURST_READ as OWN, connect, deferred, delay, listen, patterned, sender, server, streamTo, until } from '../helpers.mjs'

export async function normalSessionOrder(t) {
  const serverLog = []
  const done = deferred()
  const l = server(t, {
    open: (s) => serverLog.push('open'),
    data: (s, d) => {
      serverLog.push(`data ${d}`)
      s.write(`re:${d}`)
    },
    end: () => serverLog.push('end'),
    close: (s, e) => {
      serverLog.push(`close ${e}`)
      done.resolve()
    },
  })
  const clientLog = []
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      open: () => clientLog.push('open'),
      data: (s, d) => {
        clientLog.push(`data ${d}`)
        s.shutdown()
      },
      end: () => clientLog.push('end'),
      close: (s, e) => clientLog.push(`close ${e}`),
    },
  })
  clientLog.push('resolved')
  c.write('hi')
  await done.promise
  await until(() => clientLog.length === 4)
  t.deepEqual(clientLog, ['open', 'resolved', 'data re:hi', 'close undefined'])
  t.deepEqual(serverLog, ['open', 'data hi', 'end', 'close undefined'])
}

export async function handlersAreReadOnce(t) {
  const l = server(t, { data(s, d) { s.write(d) } })
  const calls = []
  const handlers = { data: () => calls.push('original') }
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: handlers })
  t.teardown(() => c.end())
  handlers.data = () => calls.push('replaced')
  c.write('x')
  await until(() => calls.length === 1)
  t.deepEqual(calls, ['original'])
}

// connect()'s JS hands the previous call's handler array on when every value is the same one
// (src/connect.rs): a changed function, a handler added or taken away, or another binaryType
// must each give the next connection its own set.
export async function sameHandlerObjectTracksItsChanges(t) {
  const l = server(t, { data(s, d) { s.write(d) } })
  const calls = []
  const h = { data: (s, d) => calls.push(['first', typeof d === 'string' ? d : d.constructor.name]) }
  const round = async (label) => {
    const before = calls.length
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: h })
    c.write('x')
    await until(() => calls.length > before)
    c.end()
    return calls.at(-1).concat(label)
  }
  const seen = [await round('same object'), await round('same again')]
  h.data = (s, d) => calls.push(['second', d.constructor.name])
  seen.push(await round('data replaced'))
  h.binaryType = 'arraybuffer'
  seen.push(await round('binaryType set'))
  const opened = []
  h.open = () => opened.push('open')
  seen.push(await round('open added'))
  delete h.open
  seen.push(await round('open removed'))
  t.deepEqual(seen, [
    ['first', 'Buffer', 'same object'],
    ['first', 'Buffer', 'same again'],
    ['second', 'Buffer', 'data replaced'],
    ['second', 'ArrayBuffer', 'binaryType set'],
    ['second', 'ArrayBuffer', 'open added'],
    ['second', 'ArrayBuffer', 'open removed'],
  ])
  t.deepEqual(opened, ['open'])
}

export async function binaryTypes(t) {
  const l = server(t, { data(s, d) { s.write(d) } })
  const kinds = {}
  for (const binaryType of [undefined, 'buffer', 'arraybuffer', 'uint8array']) {
    const got = deferred()
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { binaryType, data: (s, d) => got.resolve(d) } })
    c.write('ab')
    const d = await got.promise
    // A Buffer is a plain Buffer: its prototype is Buffer.prototype itself (the view is made with
    // the class Buffer.from ends in), as Bun's and node:net's are.
    kinds[binaryType ?? 'default'] = [Object.prototype.toString.call(d), Buffer.isBuffer(d), d.byteLength, Object.getPrototypeOf(d) === Buffer.prototype && d.constructor === Buffer]
    c.end()
  }
  t.deepEqual(kinds, {
    default: ['[object Uint8Array]', true, 2, true],
    buffer: ['[object Uint8Array]', true, 2, true],
    arraybuffer: ['[object ArrayBuffer]', false, 2, false],
    uint8array: ['[object Uint8Array]', false, 2, false],
  })
}

export async function chunksShowNoStaleMemoryAfterThem(t) {
  // A data Buffer may be a view of a larger ArrayBuffer (the shared slab, or the buffer of its
  // own a bulk read gets, which is not zero-filled since the read writes it). Whatever lies after
  // the chunk in that ArrayBuffer has not been written by any read yet and must be zero when the
  // handler sees it. A first transfer, dropped and collected, leaves non-zero freed memory behind
  // for the second to be handed, had a short read not had the rest of its buffer zeroed.
  const zero = Buffer.alloc(256 * 1024)
  const stale = []
  let received = 0
  let want = 0
  let checking = false
  let arrived = deferred()
  const l = server(t, {
    data(s, d) {
      received += d.length
      if (checking) {
        const after = Buffer.from(d.buffer, d.byteOffset + d.length)
        if (!after.equals(zero.subarray(0, after.length))) stale.push([d.byteOffset, d.length, d.buffer.byteLength])
      }
      if (received === want) arrived.resolve()
    },
  })
  for (const [size, fill] of [[(4 << 20) + 3000, 0xee], [(4 << 20) + 1234, 0x61]]) {
    received = 0
    want = size
    arrived = deferred()
    const src = Buffer.alloc(size, fill)
    const out = sender(src, 64 * 1024)
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { drain: (s) => out.pump(s), data() {} } })
    out.pump(c)
    await arrived.promise
    c.end()
    collectGarbage()
    checking = true
  }
  t.is(received, (4 << 20) + 1234)
  t.deepEqual(stale, [])
}

export async function bulkChunksPinAtMostTwiceTheirSize(t) {
  // Bulk reads go into buffers of their own (not the shared slab). A read that fills less than
  // half of one is copied out, so that a handler keeping small chunks does not keep a mostly
  // empty buffer alive with each. Senders of several sizes make reads of many lengths.
  const SLAB = 256 * 1024
  const wasteful = []
  let own = 0
  let received = 0
  let want = 0
  let arrived = deferred()
  const l = server(t, {
    data(s, d) {
      received += d.length
      if (d.buffer.byteLength !== SLAB) {
        own++
        if (d.buffer.byteLength > 2 * d.length) wasteful.push([d.length, d.buffer.byteLength])
      }
      if (received === want) arrived.resolve()
    },
  })
  for (const [size, piece] of [[(4 << 20) + 3000, 64 * 1024], [(2 << 20) + 77, 40 * 1024], [(2 << 20) + 5, 20 * 1024 + 3]]) {
    received = 0
    want = size
    arrived = deferred()
    const out = sender(Buffer.alloc(size, 0x61), piece)
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { drain: (s) => out.pump(s), data() {} } })
    out.pump(c)
    await arrived.promise
    c.end()
  }
  t.true(own > 0, 'no read went into a buffer of its own')
  t.deepEqual(wasteful, [])
}

export async function burstReadHeldBackByPause(t) {
  // pause() from every full burst read: nothing more until resume(), then every byte, in order
  // (the read loop stops at pause() although the read was full).
  const total = 6 << 20
  const src = patterned(total)
  let received = 0
  let mismatches = 0
  let pauses = 0
  let paused = false
  let duringPause = 0
  const done = deferred()
  const l = server(t, {
    data(s, d) {
      if (paused) duringPause++
      if (!src.subarray(received, received + d.length).equals(d)) mismatches++
      received += d.length
      if (d.length === OWN && received < total) {
        pauses++
        paused = true
        s.pause()
        setTimeout(() => {
          paused = false
          s.resume()
        }, 5)
      }
      if (received === total) done.resolve()
    },
  })
  await streamTo(t, l.port, src)
  await done.promise
  t.true(pauses > 0, 'no 120 KiB read: the burst path did not run')
  t.is(duringPause, 0)
  t.is(mismatches, 0)
  t.is(received, total)
}

export async function burstReadFollowsReloadMidRead(t) {
  // reload() from a full burst read: what follows goes to the new handler, in the new binaryType,
  // in order.
  const total = 16 << 20
  const src = patterned(total)
  let received = 0
  let mismatches = 0
  const kinds = new Set()
  let reloaded = false
  const done = deferred()
  const check = (bytes) => {
    if (!src.subarray(received, received + bytes.length).equals(bytes)) mismatches++
    received += bytes.length
    if (received === total) done.resolve()
  }
  const l = server(t, {
    data(s, d) {
      t.false(reloaded, 'the old handler ran after reload()')
      check(d)
      if (d.length === OWN && received < total) {
        reloaded = true
        s.reload({
          socket: {
            binaryType: 'arraybuffer',
            data(s, ab) {
              kinds.add(Object.prototype.toString.call(ab))
              check(Buffer.from(ab))
            },
          },
        })
      }
    },
  })
  await streamTo(t, l.port, src)
  await done.promise
  t.true(reloaded, 'no 120 KiB read: the burst path did not run')
  t.deepEqual([...kinds], ['[object ArrayBuffer]'])
  t.is(mismatches, 0)
}

export async function burstReadDroppedByEndMidRead(t) {
  // end() from a full burst read: no `data` after it although more was waiting, and `close` runs.
  const total = 16 << 20
  let afterEnd = 0
  let ended = false
  const closed = deferred()
  const l = server(t, {
    data(s, d) {
      if (ended) afterEnd++
      if (!ended && d.length === OWN) {
        ended = true
        s.end()
      }
    },
    close: () => closed.resolve(),
  })
  await streamTo(t, l.port, Buffer.alloc(total, 0x62))
  await closed.promise
  await delay(20)
  t.true(ended, 'no 120 KiB read: the burst path did not run')
  t.is(afterEnd, 0)
}

export async function burstThenFinDeliversEveryByteBeforeEnd(t) {
  // The peer ends right after a burst: every byte comes before `end`.
  const total = (8 << 20) + 5000
  const src = patterned(total)
  let received = 0
  let mismatches = 0
  const ended = deferred()
  const l = server(t, {
    data(s, d) {
      if (!src.subarray(received, received + d.length).equals(d)) mismatches++
      received += d.length
    },
    end: () => ended.resolve(received),
  })
  const out = sender(src, 64 * 1024)
  const pump = (s) => {
    out.pump(s)
    if (out.sent() === total) s.end()
  }
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { drain: pump, data() {} } })
  pump(c)
  t.is(await ended.promise, total)
  t.is(mismatches, 0)
}

export async function openThrowGoesToErrorThenCloseAndStillResolves(t) {
  const l = server(t, { data() {} })
  const log = []
  const x = new Error('boom')
  const s = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      open() {
        log.push('open')
        throw x
      },
      data() {},
      error: (s, e) => log.push(`error ${e === x} rs=${s.readyState}`),
      close: (s, e) => log.push(`close ${e} rs=${s.readyState}`),
    },
  })
  t.deepEqual(log, ['open', 'error true rs=1', 'close undefined rs=-1'])
  t.is(s.readyState, -1)
}

export async function openReturningErrorCountsAsThrow(t) {
  const l = server(t, { data() {} })
  const log = []
  const s = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: { open: () => new TypeError('returned'), data() {}, error: (s, e) => log.push(e.message), close: () => log.push('close') },
  })
  t.deepEqual(log, ['returned', 'close'])
  t.is(s.readyState, -1)
}

export async function dataThrowGoesToErrorAndSocketStaysOpen(t) {
  const l = server(t, { data(s, d) { s.write(d) } })
  const log = []
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      data(s, d) {
        log.push(`data ${d}`)
        if (String(d) === 'a') throw new Error('in data')
      },
      error: (s, e) => log.push(`error ${e.message} rs=${s.readyState}`),
    },
  })
  t.teardown(() => c.end())
  c.write('a')
  await until(() => log.length === 2)
  c.write('b')
  await until(() => log.length === 3)
  t.deepEqual(log, ['data a', 'error in data rs=1', 'data b'])
  t.is(c.readyState, 1)
}

export async function closeThrowGoesToErrorInsideEnd(t) {
  const l = server(t, { data() {} })
  const log = []
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      data() {},
      close() {
        log.push('close')
        throw new Error('in close')
      },
      error: (s, e) => log.push(`error ${e.message} rs=${s.readyState}`),
    },
  })
  t.is(c.end(), 0)
  t.deepEqual(log, ['close', 'error in close rs=-1'])
}

export async function endThrowGoesToErrorThenClose(t) {
  const opened = deferred()
  const l = server(t, { open: (s) => opened.resolve(s), data() {} })
  const log = []
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      data() {},
      end() {
        log.push('end')
        throw new Error('in end')
      },
      error: (s, e) => log.push(`error ${e.message} rs=${s.readyState}`),
      close: () => log.push('close'),
    },
  })
  ;(await opened.promise).end()
  await until(() => log.length === 3)
  t.deepEqual(log, ['end', 'error in end rs=1', 'close'])
  t.is(c.readyState, -1)
}

export async function drainThrowGoesToError(t) {
  const opened = deferred()
  const l = server(t, { open: (s) => opened.resolve(s), data() {} })
  const log = []
  const c = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      data() {},
      drain() {
        log.push('drain')
        throw new Error('in drain')
      },
      error: (s, e) => log.push(`error ${e.message}`),
    },
  })
  t.teardown(() => c.end())
  const s = await opened.promise
  s.pause()
  const big = Buffer.alloc(32 * 1024 * 1024)
  t.true(c.write(big) < big.length)
  s.resume()
  await until(() => log.length === 2)
  t.deepEqual(log, ['drain', 'error in drain'])
  t.is(c.readyState, 1)
  t.true(c.write('x') >= 0)
}

export async function socketReloadSwapsHandlers(t) {
  const l = server(t, { data(s, d) { s.write(d) } })
  const log = []
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data: () => log.push('old') } })
  t.teardown(() => c.end())
  const thisSeen = []
  t.is(c.reload({ socket: { data(s) { log.push('new'); thisSeen.push(this === s) } } }), undefined)
  c.write('x')
  await until(() => log.length === 1)
  t.deepEqual(log, ['new'])
  t.deepEqual(thisSeen, [true])
  t.throws(() => c.reload(), { message: 'Expected 1 argument' })
  for (const bad of [undefined, null, 'x', 1]) t.throws(() => c.reload(bad), { instanceOf: Error, message: 'Expected options object' })
  t.throws(() => c.reload({}), { message: 'Expected "socket" option' })
  t.throws(() => c.reload({ data() {} }), { message: 'Expected "socket" option' })
  t.throws(() => c.reload({ socket: {} }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: 'Expected at least "data" or "drain" callback' })
  t.throws(() => c.reload({ socket: { data: 1 } }), { instanceOf: TypeError, message: 'Expected "onData" callback to be a function' })
}

export async function drainOnlyHandlerIsAccepted(t) {
  const l = listen({ hostname: '127.0.0.1', port: 0, socket: { drain() {} } })
  t.teardown(() => l.stop(true))
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { drain() {} } })
  t.is(c.write('ignored by a drain-only server'), 30)
  await delay(20)
  c.end()
  t.pass()
}

export async function microtasksRunAfterEachHandler(t) {
  // As with Node's I/O callbacks (and Bun), promise jobs queued by one handler run before the
  // next handler is called, even when many sockets are ready in the same wake-up.
  const opened = []
  const l = server(t, { open: (s) => opened.push(s), data() {} })
  const log = []
  const clients = []
  for (let i = 0; i < 8; i++) {
    clients.push(
      await connect({
        hostname: '127.0.0.1',
        port: l.port,
        socket: {
          data() {
            log.push('data')
            queueMicrotask(() => log.push('micro'))
          },
        },
      }),
    )
  }
  t.teardown(() => clients.forEach((c) => c.end()))
  await until(() => opened.length === 8)
  for (const s of opened) s.write('x')
  await until(() => log.length === 16)
  t.deepEqual(log, Array.from({ length: 8 }, () => ['data', 'micro']).flat())
}

export async function sameRoundHandlersActOnSocketsNotYetRead(t) {
  // Data for five sockets arrives in one go (one wake-up: their `data` events are delivered
  // from one JS loop). The first handler to run pauses, terminates and reloads three of the
  // others and throws: each socket must see what it would see had it not been read yet (nothing
  // for the paused one until resume(), nothing for the terminated one, the new handler for the
  // reloaded one), the throw goes to the thrower's own error handler, and the round goes on.
  const opened = []
  const l = server(t, { open: (s) => opened.push(s), data() {} })
  const log = []
  const clients = []
  let first = null
  let paused = null
  const handlers = {
    data(s, d) {
      log.push(`data ${s.data.i} ${d} this=${this === s} wrote=${s.write('y')}`)
      if (first !== null) return
      first = s
      const others = clients.filter((c) => c !== s)
      paused = others[0]
      paused.pause()
      others[1].terminate()
      others[2].reload({ socket: { data: (s2, d2) => log.push(`reloaded ${s2.data.i} ${d2}`) } })
      Promise.resolve().then(() => log.push('micro'))
      throw new Error('boom')
    },
    error: (s, e) => log.push(`error ${s.data.i} ${e.message}`),
  }
  for (let i = 0; i < 5; i++) clients.push(await connect({ hostname: '127.0.0.1', port: l.port, data: { i }, socket: handlers }))
  t.teardown(() => clients.forEach((c) => c.end()))
  await until(() => opened.length === 5)
  for (const s of opened) s.write('x')
  await until(() => log.length >= 5)
  await delay(30)
  const [wasPaused, closed, reloaded, untouched] = clients.filter((x) => x !== first)
  t.is(wasPaused, paused)
  const rest = [`reloaded ${reloaded.data.i} x`, `data ${untouched.data.i} x this=true wrote=1`]
  t.deepEqual(log.slice(0, 3), [`data ${first.data.i} x this=true wrote=1`, `error ${first.data.i} boom`, 'micro'])
  t.deepEqual(log.slice(3).sort(), rest.sort())
  t.is(closed.readyState, -1)
  t.is(paused.readyState, 1)
  paused.resume()
  await until(() => log.length === 6)
  t.is(log[5], `data ${paused.data.i} x this=true wrote=1`)
}

/** A full GC, without `--expose-gc` on the command line (works in workers too). */
function collectGarbage() {
  v8.setFlagsFromString('--expose-gc')
  vm.runInNewContext('gc')()
}

/**
 * Connects `n` sockets to `port`, each with new handler closures (`data`, `close`, and `error`
 * when `withError`) that capture an object of its own, registered with `registry`.
 */
async function socketsWithOwnClosures(port, n, registry, withError) {
  const socks = []
  for (let i = 0; i < n; i++) {
    const captured = { i }
    registry.register(captured, i)
    const socket = { data() { captured.seen = true }, close() { captured.closed = true }, ...(withError ? { error() {} } : {}) }
    socks.push(await connect({ hostname: '127.0.0.1', port, socket }))
  }
  return socks
}

/** Full collections, 10 ms apart, until `done()` (at most 50). */
async function collectUntil(done) {
  for (let round = 0; round < 50 && !done(); round++) {
    collectGarbage()
    await delay(10)
  }
}

export async function handlerSetsAreReleasedWithTheirSockets(t) {
  // Each connect below passes new closures (the usual `socket: { data() {} }` literal), so each
  // socket has its own handler set. Once the sockets are closed, nothing may keep those functions
  // (or what they capture) alive; a new set reusing a released set's place calls only its own.
  const l = server(t, { data(s, d) { s.write(d) } })
  const N = 40
  let finalized = 0
  const registry = new FinalizationRegistry(() => finalized++)
  const socks = await socketsWithOwnClosures(l.port, N, registry, true)
  for (const s of socks) s.end()
  socks.length = 0
  // Sets released in place: the next ones reuse their slots and must see only their own handlers.
  const log = []
  const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (s, d) => log.push(String(d)) } })
  t.teardown(() => c.end())
  c.write('mine')
  await until(() => log.join('') === 'mine')
  await collectUntil(() => finalized === N)
  t.is(finalized, N)
  t.deepEqual(log, ['mine'])
}

export async function handlerSetsOfSocketsEndedOutsideAnyEventAreReleased(t) {
  // Sockets ended from a timer, with a node:net peer (no bunnet event follows the end): their
  // sets must be released right away, not when some later event comes.
  const peer = net.createServer((s) => s.on('error', () => {}))
  await new Promise((r) => peer.listen(0, '127.0.0.1', r))
  t.teardown(() => peer.close())
  const N = 5
  let finalized = 0
  const registry = new FinalizationRegistry(() => finalized++)
  const socks = await socketsWithOwnClosures(peer.address().port, N, registry, false)
  // bunnet keeps the last set made for the next connect() (see the next test): a socket that
  // stays open takes that place.
  const keeper = await connect({ hostname: '127.0.0.1', port: peer.address().port, socket: { data() {} } })
  t.teardown(() => keeper.end())
  await new Promise((r) =>
    setTimeout(() => {
      for (const s of socks) s.end()
      r()
    }, 5),
  )
  socks.length = 0
  await collectUntil(() => finalized === N)
  t.is(finalized, N)
}

// connect()'s JS keeps the last handler array it made, to hand it on when the next call passes
// the same functions (src/connect.rs): once bunnet's own last set is another one (here a reload
// of the listener), that cache must not keep the closures of a closed socket alive.
export async function connectCacheLetsClosedSocketsHandlersGo(t) {
  const l = server(t, { data(s, d) { s.write(d) } })
  let finalized = false
  const registry = new FinalizationRegistry(() => (finalized = true))
  await (async () => {
    const captured = {}
    registry.register(captured, 0)
    const c = await connect({ hostname: '127.0.0.1', port: l.port, socket: { data() { captured.seen = true } } })
    const closed = deferred()
    c.reload({ socket: { data() {}, close: () => closed.resolve() } })
    c.end()
    await closed.promise
  })()
  l.reload({ socket: { data(s, d) { s.write(d) } } })
  await collectUntil(() => finalized)
  t.true(finalized)
}

export async function aThrowAfterReloadGoesToTheNewErrorHandler(t) {
  // Bun routes a handler's throw to the `error` handler in effect when it throws: one that called
  // reload() first reaches the new one. Checked on the one-event and the batched data path.
  const accepted = []
  const l = server(t, { open: (s) => accepted.push(s), data() {} })
  const log = []
  const socket = {
    data(s) {
      s.reload({ socket: { data() {}, error: (s, e) => log.push(`new ${s.data} ${e.message}`) } })
      throw new Error('after reload')
    },
    error: (s) => log.push(`old ${s.data}`),
  }
  const clients = []
  for (let i = 0; i < 4; i++) clients.push(await connect({ hostname: '127.0.0.1', port: l.port, data: i, socket }))
  t.teardown(() => clients.forEach((c) => c.end()))
  await until(() => accepted.length === 4)
  accepted[0].write('x')
  await until(() => log.length === 1)
  for (const s of accepted.slice(1)) s.write('x')
  await until(() => log.length === 4)
  t.deepEqual(log.sort(), ['new 0 after reload', 'new 1 after reload', 'new 2 after reload', 'new 3 after reload'])
}

export async function handlersGetTheSocketAsThisWithBunsArgumentCounts(t) {
  // Each handler is called with `this` = the socket and as many arguments as Bun passes (a
  // handler can see both); checked for every kind of call: top-level, from inside a method
  // (`end()` reporting `close`), and for a throw routed to `error`.
  const log = []
  const rec = (side, name) =>
    function (s) {
      log.push(`${side} ${name} this=${this === s} n=${arguments.length}`)
    }
  const closed = deferred()
  const l = server(t, {
    open: rec('s', 'open'),
    data(s) {
      rec('s', 'data').apply(this, arguments)
      s.end()
    },
    end: rec('s', 'end'),
    close: rec('s', 'close'),
  })
  await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      open(s) {
        rec('c', 'open').apply(this, arguments)
        s.write('x')
      },
      data() {},
      end(s) {
        rec('c', 'end').apply(this, arguments)
        s.end()
      },
      close(s) {
        rec('c', 'close').apply(this, arguments)
        closed.resolve()
      },
    },
  })
  await closed.promise
  await connect({ hostname: '127.0.0.1', port: 1, socket: { data() {}, connectError: rec('c', 'connectError') } }).catch(() => {})
  const thrown = deferred()
  await connect({
    hostname: '127.0.0.1',
    port: l.port,
    socket: {
      open() {
        throw new Error('boom')
      },
      data() {},
      error: rec('c', 'error'),
      close: () => thrown.resolve(),
    },
  }).catch(() => {})
  await thrown.promise
  await until(() => log.filter((l) => l.startsWith('s close')).length === 2)
  t.deepEqual(log.sort(), [
    'c close this=true n=2',
    'c connectError this=true n=2',
    'c end this=true n=1',
    'c error this=true n=2',
    'c open this=true n=1',
    's close this=true n=2',
    's close this=true n=2',
    's data this=true n=2',
    's end this=true n=1',
    's open this=true n=1',
    's open this=true n=1',
  ])
}
