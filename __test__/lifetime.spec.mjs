// Process lifetime (spec §7) and error routing that reaches `process`, each in a child process:
// whether Node exits by itself, and what it printed.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const fixture = fileURLToPath(new URL('./fixtures/lifetime.mjs', import.meta.url))

/**
 * Runs a scenario; resolves { exited, code, out, err } after it exits, or once it has stayed alive
 * for `aliveMs` counted from when its stdout first contains `from` (from spawn without `from`;
 * a loaded machine can take seconds to start a child, which must not read as "exited early").
 */
function run(name, aliveMs = 1500, env = {}, from = null) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fixture, name], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let out = ''
    let err = ''
    let timer = null
    const arm = (ms) => {
      clearTimeout(timer)
      timer = setTimeout(() => {
        child.kill('SIGKILL')
        resolve({ exited: false, out, err })
      }, ms)
    }
    arm(from ? 30000 : aliveMs)
    child.stdout.on('data', (c) => {
      const before = out
      out += c
      if (from && !before.includes(from) && out.includes(from)) arm(aliveMs)
    })
    child.stderr.on('data', (c) => (err += c))
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ exited: true, code, out, err })
    })
  })
}

const staysAlive = (name, marker) =>
  test(`${name} keeps the process alive`, async (t) => {
    const r = await run(name, 1500, {}, marker)
    t.false(r.exited, `exited early: ${r.out} ${r.err}`)
    t.true(r.out.includes(marker), r.out + r.err)
  })

const exits = (name, marker, code = 0) =>
  test(`${name} lets the process exit`, async (t) => {
    const r = await run(name, 10000)
    t.true(r.exited, `still alive: ${r.out} ${r.err}`)
    t.is(r.code, code, r.err)
    t.true(r.out.includes(marker), r.out + r.err)
  })

staysAlive('listenOnly', 'listening')
exits('listenUnref', 'unrefd')
staysAlive('unrefThenRef', 'refd')
staysAlive('acceptedSocketHoldsProcess', 'client unrefd')
exits('allUnrefd', 'all unrefd')
staysAlive('clientRefAgain', 'client refd again')
exits('pendingConnectFails', 'connectError\nrejected')
exits('pendingResolveKeepsAlive', 'connectError ECONNREFUSED')
exits('connectErrorWithoutCatch', 'connectError\nconnectError fn')
staysAlive('stopFalseKeepsAcceptedSocket', 'stopped')
exits('stopTrueLetsExit', 'client closed')
exits('disposeLetsExit', '')
exits('echoThenExit', 'done')
exits('processExitWithOpenSockets', '', 7)

test('a throw in data without an error handler is an uncaughtException and the socket stays open', async (t) => {
  const r = await run('throwWithoutErrorHandler', 10000)
  t.true(r.exited, r.out + r.err)
  t.is(r.out, 'uncaught from data\nsecond data rs=1\n')
})

test('a nextTick callback that throws after a handler is an uncaughtException, not the handler\'s throw', async (t) => {
  const r = await run('nextTickThrows', 10000)
  t.true(r.exited, r.out + r.err)
  t.is(r.code, 0, r.err)
  const lines = r.out.trim().split('\n')
  t.is(lines.filter((l) => l === 'uncaught tick after open').length, 4, r.out)
  t.is(lines.filter((l) => l === 'uncaught tick after data').length, 5, r.out)
  t.is(lines.at(-1), 'errors 0 open 1,1,1,1')
})

test('a throw in open without an error handler: uncaughtException, close, promise resolves', async (t) => {
  const r = await run('openThrowWithoutErrorHandler', 10000)
  t.true(r.exited, r.out + r.err)
  t.is(r.out, 'uncaught from open\nclose\nresolved rs=-1\n')
})

test('an async open that rejects is an unhandledRejection, not an error, and the socket stays open', async (t) => {
  const r = await run('asyncOpenRejects', 10000)
  t.true(r.exited, r.out + r.err)
  t.is(r.out, 'unhandled async open\nrs=1\n')
})

test('a failed connect without connectError and without catch is an unhandled rejection', async (t) => {
  const r = await run('unhandledConnectFailure', 10000)
  t.true(r.exited)
  t.is(r.code, 1)
  t.regex(r.err, /ECONNREFUSED/)
})

test('a background end(data) flush keeps the process alive while the peer reads nothing', async (t) => {
  const r = await run('endDataStalledPeer', 2000, {}, 'end took all')
  t.false(r.exited, `exited early: ${r.out} ${r.err}`)
  t.is(r.out, 'client closed\nend took all true\n')
})

test('a background end(data) flush that makes no progress is reset after the stall limit', async (t) => {
  const r = await run('endDataStalledPeer', 10000, { BUNNET_LINGER_STALL_MS: '500' })
  t.true(r.exited, `still alive: ${r.out} ${r.err}`)
  t.is(r.code, 0, r.err)
  t.is(r.out, 'client closed\nend took all true\npeer closed ECONNRESET, got all false\n')
})

test('worker_threads with open sockets, listeners and pending connects terminate cleanly', async (t) => {
  const r = await run('workersTerminated', 20000)
  t.true(r.exited, r.out + r.err)
  t.is(r.code, 0, r.err)
  const [, before, after] = r.out.trim().split(' ').map(Number)
  t.is(after, before, `fds before ${before}, after ${after}`)
})
