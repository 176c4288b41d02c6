// A fixed number of churned connections (8 workers: connect, 1-byte echo, end()), over a unix
// socket or TCP on 127.0.0.1, then exit: for instruction counts, which on this VM are steadier
// than timings. Instructions per connection = the difference between two counts over the
// difference of N (start-up cancels out), e.g. with valgrind's callgrind:
//   valgrind --tool=callgrind --smc-check=all-non-file node bench/tools/churn-count.mjs unix 2000
//   valgrind --tool=callgrind --smc-check=all-non-file node bench/tools/churn-count.mjs unix 12000
//   ("Collected" of the second minus the first, over 10,000; `callgrind_annotate` on both files
//   gives the same per function). Diagnostic, not a row of bench/run.mjs.
//   node bench/tools/churn-count.mjs unix|tcp [N] [path to bunnet's index.mjs]
//   bun bench/tools/churn-count.mjs unix|tcp [N] bun        (Bun's own API)
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [transport = 'unix', n = '20000', which = new URL('../../index.mjs', import.meta.url).href] = process.argv.slice(2)
if (!['unix', 'tcp'].includes(transport)) throw new Error(`transport must be unix or tcp, got ${transport}`)
const N = Number(n)
const api = which === 'bun' ? globalThis.Bun : await import(which)
const path = join(tmpdir(), `bunnet-churn-count-${process.pid}.sock`)
rmSync(path, { force: true })
const ONE = Buffer.from('x')
const server = api.listen({ ...(transport === 'unix' ? { unix: path } : { hostname: '127.0.0.1', port: 0 }), socket: { data: (s, d) => s.write(d) } })
const port = server.port
// The options are object literals, not `{ ...target, socket }`: in Node 20's V8 an object made by
// spread gets a new map on every call here, so every property load on it misses its inline cache
// (~1.5k instructions each, ~20k per connect(); bench/NOTES.md, thirteenth session).
const options = (socket) => (transport === 'unix' ? { unix: path, socket } : { hostname: '127.0.0.1', port, socket })
let started = 0
const once = () =>
  new Promise((resolve, reject) => {
    api
      .connect(options({ open: (s) => s.write(ONE), data(s) { s.end(); resolve() }, connectError: (s, e) => reject(e), error: (s, e) => reject(e) }))
      .catch(reject)
  })
const loop = async () => {
  while (started < N) {
    started++
    await once()
  }
}
await Promise.all(Array.from({ length: 8 }, loop))
server.stop(true)
