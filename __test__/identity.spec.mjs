// Which socket a method acts on (src/identity.rs): inside a handler, `write()` and the other
// methods compare `this` with the socket the handler was given, and anywhere else with the object
// found through the hidden index. On this Node that comparison reads the two handles' slots; with
// BUNNET_STRICT_EQUALS=1 it is napi_strict_equals. The scenarios that mix sockets, forged and
// inherited receivers and one-round batches run in a child process in each mode.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const fixture = fileURLToPath(new URL('./fixtures/identity.mjs', import.meta.url))
const scenarios = [
  'badinput:classesCannotBeMisused',
  'badinput:receiversAreCheckedInsideHandlers',
  'handlers:sameRoundHandlersActOnSocketsNotYetRead',
  'write:writesFromOneRoundReachTheirOwnSockets',
]

function run(strict) {
  const env = { ...process.env, NODE_DEBUG: 'bunnet', BUNNET_STRICT_EQUALS: strict }
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [fixture, ...scenarios], { env, timeout: 50000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr.slice(-2000)}`))
      resolve({ results: JSON.parse(stdout.trim().split('\n').pop()), log: stderr })
    })
  })
}

function allPassed(t, results, log) {
  t.deepEqual(Object.keys(results), scenarios)
  for (const [name, r] of Object.entries(results)) t.true(r.ok, `${name}: ${r.error}`)
  // The one-round scenarios did go through the JS loop (src/batch.rs), where the hint is the
  // connection rather than the object.
  t.regex(log, /batch: ([2-9]|\d{2,}) reports through one JS loop/)
}

test('handle slots compared (the default on this Node): receivers are told apart', async (t) => {
  const { results, log } = await run('')
  allPassed(t, results, log)
  // Node 20's napi_value is a V8 handle slot; another Node may fail the probe and fall back.
  if (process.versions.node.startsWith('20.')) t.true(log.includes('identity: handle slots compared'), log.split('\n')[0])
  else t.true(/identity: (handle slots compared|napi_strict_equals)/.test(log))
})

test('BUNNET_STRICT_EQUALS=1: the same scenarios through napi_strict_equals', async (t) => {
  const { results, log } = await run('1')
  allPassed(t, results, log)
  t.true(log.includes('identity: napi_strict_equals'))
  t.false(log.includes('identity: handle slots compared'))
})
