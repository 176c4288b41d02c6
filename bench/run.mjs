#!/usr/bin/env node
// Benchmark harness: runs every workload under Bun (Bun.listen/Bun.connect, bun binary),
// node:net and bunnet (node + this addon), each run in a fresh child process, interleaved per
// round, and writes bench/RESULTS.md with medians and ratios.
//
//   node bench/run.mjs [--rounds N] [--quick] [--only name[,name...]] [--out file] [--timeout s]
//
// --quick: small sizes, short durations and 1 round (CI smoke test). --only matches workload
// names or prefixes (pingpong, pingpong-1, bulk, churn, mem, mem-server, write-cost, tls, ...); an
// exact workload name selects only that one (pingpong-1 is not also pingpong-1-2p). --timeout: per
// run, seconds (default 240, quick 90). BUN_BIN overrides the bun binary (default: get-bun.sh).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs, peerOverride } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const opts = parseArgs(process.argv.slice(2))
const quick = opts.quick === true
const rounds = quick ? 1 : Number(opts.rounds ?? 5)
const outFile = opts.out ? String(opts.out) : join(here, 'RESULTS.md')
const TIMEOUT_MS = opts.timeout ? Number(opts.timeout) * 1000 : quick ? 90_000 : 240_000

// name, script, extra args, title, which direction is better; `details`: fields of the runs'
// JSON whose medians are listed in RESULTS.md under "Details" (so readers can judge the values)
const WORKLOADS = [
  { name: 'pingpong-1', script: 'pingpong.mjs', args: ['--conns', '1'], title: 'ping-pong, 1 connection (32 B)', better: 'higher' },
  { name: 'pingpong-64', script: 'pingpong.mjs', args: ['--conns', '64'], title: 'ping-pong, 64 connections (32 B)', better: 'higher' },
  { name: 'bulk', script: 'bulk.mjs', args: [], title: `bulk client→server, ${quick ? '64 MiB' : '1 GiB'} in 64 KiB chunks`, better: 'higher' },
  { name: 'churn', script: 'churn.mjs', args: [], title: 'connect / 1-byte echo / end, 8 concurrent', better: 'higher', details: ['timeWaitAtStart', 'timeWaitAtEnd'] },
  { name: 'pingpong-1-2p', script: 'pingpong.mjs', args: ['--conns', '1', '--split'], title: 'ping-pong, 1 connection (32 B), server in a second process', better: 'higher' },
  { name: 'pingpong-64-2p', script: 'pingpong.mjs', args: ['--conns', '64', '--split'], title: 'ping-pong, 64 connections (32 B), server in a second process', better: 'higher' },
  { name: 'bulk-2p', script: 'bulk.mjs', args: ['--split'], title: `bulk client→server, ${quick ? '64 MiB' : '1 GiB'} in 64 KiB chunks, server in a second process`, better: 'higher' },
  { name: 'churn-2p', script: 'churn.mjs', args: ['--split'], title: 'connect / 1-byte echo / end, 8 concurrent, server in a second process', better: 'higher', details: ['timeWaitAtStart', 'timeWaitAtEnd'] },
  { name: 'mem-server', script: 'memory.mjs', args: ['--side', 'server'], title: `memory per idle connection, server side (${quick ? '2,000' : '10,000'} more conns)`, better: 'lower' },
  { name: 'mem-client', script: 'memory.mjs', args: ['--side', 'client'], title: `memory per idle connection, client side (${quick ? '2,000' : '10,000'} more conns)`, better: 'lower' },
  { name: 'write-cost', script: 'write-cost.mjs', args: [], title: 'cost of one 1-byte socket.write() (kernel never full; node:net write() can buffer in userland)', better: 'lower', details: ['p90Ns', 'shortBatches'] },
  { name: 'data-event-cost', script: 'data-event-cost.mjs', args: [], title: "CPU cost of one 'data' event (≈32 B each, sender in a second process)", better: 'lower', details: ['avgBytesPerEvent', 'eventsPerSec', 'userNsPerEvent', 'systemNsPerEvent'] },
  { name: 'tls-handshakes', script: 'tls-handshakes.mjs', args: [], title: 'TLS handshakes (full, no resumption), connect / handshake / end, 8 concurrent', better: 'higher', details: ['reuseChecked', 'sessionsReused', 'protocol', 'cipher'] },
  { name: 'tls-bulk', script: 'tls-bulk.mjs', args: [], title: `TLS bulk client→server, ${quick ? '64 MiB' : '1 GiB'} in 64 KiB writes`, better: 'higher', details: ['protocol', 'cipher'] },
]
const IMPLS = ['bun', 'node', 'bunnet']

const only = opts.only ? String(opts.only).split(',') : null
const names = new Set(WORKLOADS.map((w) => w.name))
const workloads = only ? WORKLOADS.filter((w) => only.some((o) => w.name === o || (!names.has(o) && w.name.startsWith(o)))) : WORKLOADS
if (!workloads.length) {
  console.error(`--only ${opts.only}: no such workload (have ${WORKLOADS.map((w) => w.name).join(', ')})`)
  process.exit(2)
}

if (peerOverride()) throw new Error('BUNNET_BENCH_PEER is set: mixed-pair peers are for single experiments, not for RESULTS.md')
/** Where bunnet's reactor registers sockets under this Node (src/poller.rs), from its debug log. */
function pollerMode() {
  const index = JSON.stringify(pathToFileURL(join(here, '..', 'index.mjs')).href)
  const src = `const { listen } = await import(${index}); listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } }).stop(true)`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { env: { ...process.env, NODE_DEBUG: 'bunnet' }, encoding: 'utf8', timeout: 20000 })
  const mode = /poller: (direct|nested)/.exec(r.stderr ?? '')?.[1]
  return mode === 'direct' ? "libuv's own epoll set (direct mode)" : mode === 'nested' ? 'a nested epoll set' : 'an unknown place (no poller line in the debug log)'
}
const bunBin = process.env.BUN_BIN || execFileSync(join(here, '..', '..', 'shared', 'tools', 'get-bun.sh'), { encoding: 'utf8' }).trim()
const bunVersion = execFileSync(bunBin, ['--version'], { encoding: 'utf8' }).trim()
const hardLimit = execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()
const fdLimit = hardLimit === 'unlimited' ? 65536 : Math.min(65536, Number(hardLimit))
if (fdLimit < (quick ? 2300 : 11100)) console.error(`warning: fd hard limit ${hardLimit} is too low for the memory workloads`)

/** Runs one workload under one implementation in a fresh process; resolves { ok, result | error }. */
function runOne(w, impl) {
  const script = join(here, 'workloads', w.script)
  const wargs = [script, '--impl', impl, ...w.args, ...(quick ? ['--quick'] : [])]
  const cmd = impl === 'bun' ? [bunBin, ...wargs] : [process.execPath, '--expose-gc', ...wargs]
  return new Promise((resolve) => {
    // own process group so a hung run (and its peer child) can be killed as a whole
    const child = spawn('bash', ['-c', 'ulimit -n "$0" && exec "$@"', String(fdLimit), ...cmd], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child.pid)
    }, TIMEOUT_MS)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      killGroup(child.pid) // leftovers (e.g. a peer process)
      const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop()
      let result = null
      try {
        result = line && JSON.parse(line)
      } catch {}
      if (code === 0 && result && Number.isFinite(result.value)) return resolve({ ok: true, result })
      const why = timedOut ? `timed out after ${TIMEOUT_MS / 1000} s` : `exit ${code ?? signal}`
      const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-6).join('\n')
      resolve({ ok: false, error: `${why}${tail ? `: ${tail}` : ''}` })
    })
  })
}

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {}
}

const median = (xs) => {
  if (!xs.length) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmt = (x) => (Number.isFinite(x) ? (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)) : '—')
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b ? `${(a / b).toFixed(2)}×` : '—')

/** A slot's values in round order, `undefined` for a round whose run failed. */
const byRound = (slot) => {
  const out = []
  for (let r = 1, vi = 0; r <= rounds; r++) out.push(slot.errors.some((e) => e.round === r) ? undefined : slot.values[vi++])
  return out
}
const fmtDetail = (x) => (Number.isFinite(x) ? (Math.abs(x) >= 100 || Number.isInteger(x) ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)) : '—')

// ---- run --------------------------------------------------------------------------------
const data = {} // data[workload][impl] = { values: [], results: [full JSON], unit, errors: [{ round, error }] }
for (const w of workloads) data[w.name] = Object.fromEntries(IMPLS.map((i) => [i, { values: [], results: [], errors: [] }]))

const started = Date.now()
for (let round = 1; round <= rounds; round++) {
  // rotate the order each round so no implementation always runs first
  const order = IMPLS.map((_, i) => IMPLS[(i + round - 1) % IMPLS.length])
  for (const w of workloads) {
    for (const impl of order) {
      const t0 = Date.now()
      const r = await runOne(w, impl)
      const secs = ((Date.now() - t0) / 1000).toFixed(1)
      const slot = data[w.name][impl]
      if (r.ok) {
        slot.values.push(r.result.value)
        slot.results.push(r.result)
        slot.unit = r.result.unit
        console.error(`[round ${round}/${rounds}] ${w.name.padEnd(15)} ${impl.padEnd(6)} ${fmt(r.result.value)} ${r.result.unit} (${secs} s)`)
      } else {
        slot.errors.push({ round, error: r.error })
        console.error(`[round ${round}/${rounds}] ${w.name.padEnd(15)} ${impl.padEnd(6)} FAILED (${secs} s): ${r.error.split('\n')[0]}`)
      }
    }
  }
}

// ---- report -----------------------------------------------------------------------------
const command = `node ${relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/run.mjs'} ${process.argv.slice(2).join(' ')}`.trim()
const cpus = os.cpus()
const cell = (slot) => {
  if (!slot.values.length) return 'failed'
  const m = fmt(median(slot.values))
  return slot.errors.length ? `${m} (${slot.errors.length} failed)` : m
}
const lines = []
lines.push('# bunnet benchmark results', '')
lines.push(`Generated by \`${command}\`${quick ? ' (quick smoke mode: small sizes, short durations, 1 round; not for comparison)' : ''}.`, '')
lines.push('| | |', '|---|---|')
lines.push(`| date | ${new Date().toISOString()} |`)
lines.push(`| cpu | ${cpus[0]?.model ?? 'unknown'} |`)
lines.push(`| cores | ${cpus.length} |`)
lines.push(`| os | ${os.type()} ${os.release()} ${os.arch()} |`)
lines.push(`| node | ${process.version} (libuv ${process.versions.uv}; bunnet's sockets in ${pollerMode()}) |`)
lines.push(`| bun | ${bunVersion} |`)
lines.push(`| rounds | ${rounds} (each workload × implementation once per round, fresh process each, order rotated per round) |`)
lines.push(`| fd limit | ${fdLimit} (hard ${hardLimit}) |`)
lines.push(`| wall time | ${((Date.now() - started) / 1000).toFixed(0)} s |`, '')
lines.push('Medians across rounds. Ratios are bunnet ÷ other: for throughput rows (higher is better) a ratio')
lines.push('above 1 means bunnet is faster; for memory and cost rows (**lower is better**: mem-*, write-cost,')
lines.push('data-event-cost) a ratio below 1 means bunnet uses less memory or CPU time.', '')
lines.push('| workload | unit | better | bun | node:net | bunnet | bunnet/node | bunnet/bun |')
lines.push('|---|---|---|---:|---:|---:|---:|---:|')
for (const w of workloads) {
  const d = data[w.name]
  const unit = d.bunnet.unit ?? d.node.unit ?? d.bun.unit ?? ''
  const [mb, mn, mx] = ['bun', 'node', 'bunnet'].map((i) => median(d[i].values))
  lines.push(`| ${w.name}: ${w.title} | ${unit} | ${w.better === 'lower' ? '**lower**' : w.better} | ${cell(d.bun)} | ${cell(d.node)} | ${cell(d.bunnet)} | ${ratio(mx, mn)} | ${ratio(mx, mb)} |`)
}
// Paired view: within one round the implementations run back to back, so the ratio of a round's
// two values cancels the machine's slower drifts (an hour when everything is 5 % slower), which a
// ratio of medians over the whole run does not.
lines.push('', '## Round by round against Bun', '')
lines.push('Each round runs the implementations back to back; the ratio of one round\'s values (bunnet ÷ Bun) is')
lines.push('paired in time. "bunnet better" counts the rounds where bunnet\'s value is better (higher, or lower')
lines.push('for the **lower** rows).', '')
lines.push('| workload | median of round ratios | lowest – highest | bunnet better |', '|---|---:|---:|---:|')
for (const w of workloads) {
  const [b, x] = [byRound(data[w.name].bun), byRound(data[w.name].bunnet)]
  const rs = x.flatMap((v, i) => (b[i] > 0 && Number.isFinite(v) ? [v / b[i]] : []))
  if (!rs.length) continue
  const better = rs.filter((q) => (w.better === 'lower' ? q < 1 : q > 1)).length
  lines.push(`| ${w.name} | ${median(rs).toFixed(3)} | ${Math.min(...rs).toFixed(2)} – ${Math.max(...rs).toFixed(2)} | ${better} of ${rs.length} |`)
}
const withDetails = workloads.filter((w) => w.details?.length)
if (withDetails.length) {
  lines.push('', '## Details', '')
  lines.push('Medians across rounds of extra fields in the runs\' JSON output (text fields: the distinct values; see Workloads below).', '')
  lines.push('| workload | field | bun | node:net | bunnet |', '|---|---|---:|---:|---:|')
  for (const w of withDetails) {
    for (const f of w.details) {
      const cells = IMPLS.map((i) => {
        const vals = data[w.name][i].results.map((r) => r[f])
        // text fields (e.g. the negotiated TLS cipher): the distinct values, not a median
        if (vals.some((v) => typeof v === 'string')) return [...new Set(vals.filter((v) => typeof v === 'string'))].join(', ') || '—'
        return fmtDetail(median(vals.filter(Number.isFinite)))
      })
      lines.push(`| ${w.name} | ${f} | ${cells.join(' | ')} |`)
    }
  }
}
lines.push('', '## Per-round values', '')
lines.push('| workload | impl | values (round order) |', '|---|---|---|')
for (const w of workloads) {
  for (const impl of IMPLS) {
    const vals = byRound(data[w.name][impl]).map((v) => (v === undefined ? 'failed' : fmt(v)))
    lines.push(`| ${w.name} | ${impl} | ${vals.join(', ')} |`)
  }
}
const failures = workloads.flatMap((w) => IMPLS.flatMap((i) => data[w.name][i].errors.map((e) => ({ w: w.name, i, ...e }))))
if (failures.length) {
  lines.push('', '## Failures', '')
  for (const f of failures) lines.push(`- **${f.w} / ${f.i}**, round ${f.round}:`, '', '  ```', ...f.error.split('\n').map((l) => `  ${l}`), '  ```', '')
}
lines.push('', '## Workloads', '')
lines.push('Each run is a fresh process (`bun` for Bun, `node --expose-gc` for node:net and bunnet) started as')
lines.push(`\`bash -c 'ulimit -n ${fdLimit}; exec …'\`; it prints one JSON line. Sources: \`bench/workloads/*.mjs\`;`)
lines.push('the Bun and bunnet runs share the same code (Bun socket API), node:net uses `setNoDelay(true)` and')
lines.push("honours backpressure via write()'s return value and 'drain'.", '')
lines.push('- **pingpong-1 / pingpong-64**: client sends 32 bytes, server echoes, next message after the full reply; round trips counted for ' + (quick ? '1 s' : '3 s') + ' after 0.5 s warm-up; server and clients in one process.')
lines.push('- **bulk**: one client streams to an in-process server in 64 KiB chunks honouring backpressure; MB/s = 1e6 bytes/s, timed from connect to the last byte received.')
lines.push('- **churn**: 8 concurrent loops of connect → write 1 byte → await echo → `end()` → next; connections/s counted for ' + (quick ? '1 s' : '3 s') + ' after 0.5 s warm-up.')
lines.push('- **pingpong-1-2p / pingpong-64-2p / bulk-2p / churn-2p**: the same workloads with `--split`: the server runs in a second process of the same implementation (the workload script with `--role server`, printing its port), the clients and all counting in the measured process. bulk-2p is timed from connect to a 1-byte ack the server sends once it has all bytes; the server\'s byte count is then checked over stdin/stdout.')
lines.push('- **mem-server / mem-client**: the marginal memory of an idle connection: 1,000 connections are opened and kept first (one-time costs land before the baseline; nothing is closed, so no freed memory is reused), then 10,000 more; value = growth of anonymous resident memory (`RssAnon` in /proc/self/status: malloc, the JS heap, stacks) ÷ 10,000. Each sample follows forced GCs (`Bun.gc(true)` / `gc()`) and 10 s idle, which lets V8\'s memory reducer return the young-generation space it grew while the sockets were created (right after the connects V8\'s heapTotal is ~1.5 KB per connection above its settled size). The peer side runs in a child process of the same implementation. Details: `rss` (total RSS growth per connection, including `file`: pages of the runtime\'s own binary faulted in the first time a code path or JIT tier runs, ~3.6 MB of node\'s text for bunnet, not connection memory), `heapTotal`/`heapUsed` (JS heap growth per connection as the runtime reports it).')
lines.push(`- **write-cost** (lower is better): a connected pair in one process, TCP_NODELAY; the client calls \`write()\` with a 1-byte Buffer ${quick ? '200,000' : '1,000,000'} times (after ${quick ? 3 : 10} warm-up batches), 10,000 per event-loop turn with \`setImmediate\` in between so the in-process receiver drains the kernel buffer; a batch cut short by a short write (Bun API: 0 bytes taken; node:net: \`false\`, i.e. buffering in userland) waits for \`drain\` and is not timed. Value: median over batches of batch wall time ÷ writes (ns). Every write is one send(2); all bytes must arrive.`)
lines.push(`- **data-event-cost** (lower is better): a sender in a second process of the same implementation writes 32 B with TCP_NODELAY, then yields with \`setImmediate\`, as fast as it can but at least 50 µs apart (busy-waited in the sender; without a gap reads carried 45–245 B, varying between runs and implementations), so each event carries one message and all three see the same event rate; the measured process counts \`data\` events and its own CPU time (\`process.cpuUsage()\`, user + system, all threads) for ${quick ? '1 s' : '3 s'} after 0.5 s warm-up. Value: CPU ns per event, including the wake-up from epoll and the read syscall (most of the system time); Details lists the user/system split and \`avgBytesPerEvent\`. Afterwards the sender's byte count must match what arrived.`)
lines.push(`- **tls-handshakes**: a TLS server (test certificate for localhost from \`__test__/fixtures/tls\`) and 8 concurrent client loops in one process: connect with \`tls: { ca, serverName: 'localhost' }\` (node:tls: \`tls.connect\` with \`ca\`/\`servername\`, TCP_NODELAY on both sides as in Bun) → handshake complete (Bun API: \`handshake\` handler, success true; node:tls: 'secureConnect') → \`end()\` → next; handshakes/s counted for ${quick ? '1 s' : '3 s'} after 0.5 s warm-up. Every handshake is a full one: no session is ever offered (Bun/bunnet resume only after \`setSession()\`, node:tls only with a \`session\` option); \`isSessionReused()\` is checked on every 8th connection (Details: \`reuseChecked\`, \`sessionsReused\`, which must be 0). Each stack negotiates its own protocol and cipher (Details); the server's CPU cost is in the same process.`)
lines.push('- **tls-bulk**: like **bulk**, over TLS: writing starts once the handshake is complete; Bun API `write()` returns the plaintext bytes the TLS session took (the rest is resent on `drain`), node:tls waits for `drain` when `write()` returns false. MB/s of plaintext, timed from connect to the last byte received; the server\'s count and the client\'s `bytesWritten` must both equal the total. The cipher is each stack\'s default choice (Details): the AES key size differs between stacks, which affects this row.')
// The hand-written analysis (profiles, what each change bought) follows the generated tables.
const notes = join(here, 'NOTES.md')
if (existsSync(notes)) lines.push('', readFileSync(notes, 'utf8').trimEnd())
writeFileSync(outFile, lines.join('\n') + '\n')
console.error(`\nwrote ${relative(process.cwd(), outFile)}`)
console.log(lines.slice(lines.indexOf('| workload | unit | better | bun | node:net | bunnet | bunnet/node | bunnet/bun |'), lines.indexOf('## Per-round values') - 1).join('\n'))
