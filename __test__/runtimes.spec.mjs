// One import, two runtimes: under Bun "bunnet" is Bun's own API (export condition), under Node
// it is the addon; "bunnet/polyfill" installs Bun.connect/Bun.listen on Node. NODE_DEBUG=bunnet.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import test from 'ava'

const run = promisify(execFile)
const fixture = (f) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url))
// Bun 1.4.5 from the shared tools next to the project (as bench/run.mjs); BUN_BIN overrides.
const getBun = fileURLToPath(new URL('../../shared/tools/get-bun.sh', import.meta.url))
const bunBinary = async () => process.env.BUN_BIN || (await run('bash', [getBun], { timeout: 240000 })).stdout.trim()

test('under Node, `bunnet` is the addon', async (t) => {
  const { stdout } = await run(process.execPath, [fixture('runtime-check.mjs')])
  t.is(stdout, 'bunnet ping\n')
})

test('under Bun, `bunnet` is Bun.connect/Bun.listen themselves', async (t) => {
  const { stdout } = await run(await bunBinary(), [fixture('runtime-check.mjs')])
  t.is(stdout, 'bun-native ping\n')
})

test('bunnet/polyfill installs Bun.connect and Bun.listen on Node (ESM and CommonJS)', async (t) => {
  const esm = await run(process.execPath, [fixture('polyfill-check.mjs')])
  t.is(esm.stdout, 'Bun.connect poly\n')
  const cjs = await run(process.execPath, [fixture('polyfill-check.cjs')])
  t.is(cjs.stdout, 'function function true\n')
})

test('NODE_DEBUG=bunnet logs listen, connect, accept and close to stderr', async (t) => {
  const { stdout, stderr } = await run(process.execPath, [fixture('runtime-check.mjs')], {
    env: { ...process.env, NODE_DEBUG: 'bunnet' },
  })
  t.is(stdout, 'bunnet ping\n')
  for (const what of [/^BUNNET \d+: listen: 127\.0\.0\.1 port \d+$/m, /connect: attempting 127\.0\.0\.1:\d+/, /accept: fd \d+ from 127\.0\.0\.1:\d+/, /connect: connected fd \d+/, /close fd \d+ \(Graceful\)/]) {
    t.regex(stderr, what)
  }
  const quiet = await run(process.execPath, [fixture('runtime-check.mjs')], { env: { ...process.env, NODE_DEBUG: '' } })
  t.is(quiet.stderr, '')
})

test('sockets are made the same after user code changes Object.prototype, Object.defineProperty or Socket.prototype', async (t) => {
  const { stdout } = await run(process.execPath, [fixture('polluted.mjs')], { timeout: 60000 })
  const socket = {
    echoed: 'ping',
    data: { side: 'client' },
    keys: ['data'],
    spreadSymbols: 0,
    ownKeys: ['data'],
    dataDescriptor: { writable: true, enumerable: true, configurable: true },
    defines: 0,
    assigned: 'changed',
  }
  t.deepEqual(JSON.parse(stdout), { withGetter: socket, withAttributes: socket })
})

test('globals replaced before bunnet loads catch nothing that makes a foreign object a socket', async (t) => {
  const { stdout } = await run(process.execPath, [fixture('preload-tamper.mjs')], { timeout: 60000 })
  const out = JSON.parse(stdout)
  t.is(out.echoed, 'ping')
  // the replaced globals did see bunnet's prototypes and constructors (so the check has material)
  t.true(out.caught > 0)
  t.deepEqual(out.leakedNatives, [])
  t.deepEqual(out.forged, [])
})
