// The synchronous cost of one connect() call: the time until it returns its promise, best of 34
// batches of 200 calls (after 6 warm-up batches), with one handler object for all. Diagnostic,
// not a row of bench/run.mjs.
//   node bench/tools/connect-cost.mjs [path to bunnet's index.mjs, or ''] [hostname]
//   bun bench/tools/connect-cost.mjs bun [hostname]
// hostname defaults to 127.0.0.1 (the call includes socket(2) and the non-blocking connect(2),
// which on loopback completes the handshake inline); with `localhost` the name goes to a lookup
// off the JS thread, so the figure is option parsing, the socket object and the promise alone.
// Prints ns per call.
const which = process.argv[2] || new URL('../../index.mjs', import.meta.url).href
const hostname = process.argv[3] || '127.0.0.1'
const api = which === 'bun' ? globalThis.Bun : await import(which)
const listener = api.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {}, open(s) { s.end() } } })
const handlers = { data() {}, close() {} }
let best = Infinity
for (let round = 0; round < 40; round++) {
  const pending = []
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < 200; i++) pending.push(api.connect({ hostname, port: listener.port, socket: handlers }))
  const ns = Number(process.hrtime.bigint() - t0) / 200
  if (round >= 6) best = Math.min(best, ns)
  for (const s of await Promise.all(pending)) s.end()
  await new Promise((r) => setTimeout(r, 5))
}
console.log(`${Math.round(best)} ns per connect() (${hostname})`)
listener.stop(true)
