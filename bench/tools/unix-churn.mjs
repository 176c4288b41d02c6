// Connection churn over a unix socket: the user-space cost of a connection without TCP's
// TIME_WAIT port search, which dominates (and caps) the TCP churn rows on Linux. Diagnostic,
// not a row of bench/run.mjs.
//   node bench/tools/unix-churn.mjs [path to bunnet's index.mjs]   (default: this checkout)
//   bun bench/tools/unix-churn.mjs bun
// Prints connections/s and user/system CPU µs per connection over 3 s after a 0.5 s warm-up.
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const which = process.argv[2] ?? new URL('../../index.mjs', import.meta.url).href
const api = which === 'bun' ? globalThis.Bun : await import(which)
const path = join(tmpdir(), `bunnet-unix-churn-${process.pid}.sock`)
rmSync(path, { force: true })
const ONE = Buffer.from('x')
const server = api.listen({ unix: path, socket: { data: (s, d) => s.write(d) } })
let done = 0
let stop = false
const once = () =>
  new Promise((resolve, reject) => {
    const socket = {
      open: (s) => s.write(ONE),
      data(s) {
        s.end()
        resolve()
      },
      connectError: (s, e) => reject(e),
      error: (s, e) => reject(e),
    }
    api.connect({ unix: path, socket }).catch(reject)
  })
const loop = async () => {
  while (!stop) {
    await once()
    done++
  }
}
for (let i = 0; i < 8; i++) loop()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
await sleep(500)
const cpu0 = process.cpuUsage()
const n0 = done
const t0 = performance.now()
await sleep(3000)
const cpu = process.cpuUsage(cpu0)
const n = done - n0
const secs = (performance.now() - t0) / 1000
stop = true
await sleep(50)
console.log(JSON.stringify({ impl: which === 'bun' ? 'bun' : 'bunnet', rate: Math.round(n / secs), userUsPerConn: +(cpu.user / n).toFixed(2), systemUsPerConn: +(cpu.system / n).toFixed(2) }))
server.stop(true)
rmSync(path, { force: true })
process.exit(0)
