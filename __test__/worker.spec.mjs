// Every socket scenario again, each inside its own worker_thread (Node-API addons must work per
// environment: own reactor, own libuv loop, clean teardown). The worker is terminated right after
// the scenario reports, whatever it left open.
import { readdirSync } from 'node:fs'
import { Worker } from 'node:worker_threads'

import test from 'ava'

const dir = new URL('./scenarios/', import.meta.url)
const shim = new URL('./worker-shim.mjs', import.meta.url)

const files = readdirSync(dir).filter((f) => f.endsWith('.mjs')).sort()
// ava wants every test declared synchronously: load all scenario modules first.
const mods = await Promise.all(files.map((f) => import(new URL(f, dir).href)))

for (const [i, f] of files.entries()) {
  const file = new URL(f, dir).href
  const mod = mods[i]
  for (const name of Object.keys(mod)) {
    if (typeof mod[name] !== 'function') continue
    test(`worker: ${f.replace('.mjs', '')} › ${name}`, async (t) => {
      const w = new Worker(shim, { workerData: { file, name } })
      const result = await new Promise((resolve, reject) => {
        w.once('message', resolve)
        w.once('error', reject)
        w.once('exit', (code) => resolve({ ok: false, error: `worker exited early with ${code}` }))
      })
      await w.terminate()
      if (!result.ok) t.fail(result.error)
      else t.pass()
    })
  }
}
