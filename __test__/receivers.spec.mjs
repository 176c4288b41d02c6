// Which socket a method acts on (src/class.rs): every member reads its receiver's private table
// index, so sockets, forged and inherited receivers and the sockets of one batched round
// (src/batch.rs) are told apart with no lookup. The scenarios that mix them run in worker_threads
// of a child process with NODE_DEBUG=bunnet, so the log shows that a round really went through
// the JS loop.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const fixture = fileURLToPath(new URL('./fixtures/receivers.mjs', import.meta.url))
const scenarios = [
  'badinput:classesCannotBeMisused',
  'badinput:receiversAreCheckedInsideHandlers',
  'handlers:sameRoundHandlersActOnSocketsNotYetRead',
  'write:writesFromOneRoundReachTheirOwnSockets',
]

test('receivers are told apart, in handlers, in one-round batches and outside both', async (t) => {
  const env = { ...process.env, NODE_DEBUG: 'bunnet' }
  const { results, log } = await new Promise((resolve, reject) => {
    execFile(process.execPath, [fixture, ...scenarios], { env, timeout: 50000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr.slice(-2000)}`))
      resolve({ results: JSON.parse(stdout.trim().split('\n').pop()), log: stderr })
    })
  })
  t.deepEqual(Object.keys(results), scenarios)
  for (const [name, r] of Object.entries(results)) t.true(r.ok, `${name}: ${r.error}`)
  // The one-round scenarios did go through the JS loop (src/batch.rs).
  t.regex(log, /batch: ([2-9]|\d{2,}) reports through one JS loop/)
})
