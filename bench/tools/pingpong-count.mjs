// A fixed number of ping-pong round trips (64 connections in one process, 1-byte messages), then
// exit: for instruction counts (see churn-count.mjs for the method): instructions per round trip
// = the difference between the counts of two runs over the difference of N.
// Diagnostic, not a row of bench/run.mjs.
//   node bench/tools/pingpong-count.mjs [N] [path to bunnet's index.mjs]
//   bun bench/tools/pingpong-count.mjs [N] bun        (Bun's own API)
const [n = '20000', which = new URL('../../index.mjs', import.meta.url).href] = process.argv.slice(2)
const api = which === 'bun' ? globalThis.Bun : await import(which)
const N = Number(n)
const CONNS = 64
const ONE = Buffer.from('x')
let left = N
const server = api.listen({ hostname: '127.0.0.1', port: 0, socket: { data: (s, d) => s.write(d) } })
let done
const finished = new Promise((r) => (done = r))
let open = CONNS
for (let i = 0; i < CONNS; i++) {
  api.connect({
    hostname: '127.0.0.1',
    port: server.port,
    socket: {
      open: (s) => s.write(ONE),
      data(s) {
        if (--left > 0) s.write(ONE)
        else s.end()
      },
      close() {
        if (--open === 0) done()
      },
    },
  })
}
await finished
server.stop(true)
