// bunnet stress and fault suite: `node stress/run.mjs [--quick] [--only a,b] [--seed N]`.
// Runs every area (stress/<area>.mjs) in its own child process, one after another, under
// `bash -c 'ulimit -n $(ulimit -Hn); exec node --expose-gc …'` (load needs the raised fd limit),
// with a per-area timeout: a crash (signal, abort, unexpected exit code) or a hang (timeout) is a
// failed check of its own. Prints one line per area, writes stress/RESULTS.md, and ends with
// "N passed, N failed" over the areas' individual checks; exits 1 if any failed.
import { spawn, execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const opt = (n) => {
  const i = argv.indexOf(n)
  return i >= 0 ? argv[i + 1] : undefined
}
const only = opt('--only')?.split(',')
const seed = opt('--seed')

// name, title, timeout quick/full (s), key figures for the one-line summary. Quick timeouts
// keep a run with one hanging area under 3 minutes (the areas take ~50 s in all).
const AREAS = [
  { name: 'load', title: '1. Load: concurrent connections held open', timeout: [60, 240], keys: ['connections held (each side)', 'server: bytes per connection (RSS delta after gc / N)', 'client: bytes per connection (RSS delta after gc / N)', 'server: peak RSS'] },
  { name: 'churn', title: '2. Churn and leaks', timeout: [120, 900], keys: ['cycles completed', 'rate', 'RSS drift (last vs 2nd quarter)', 'unfinalized after gc'] },
  { name: 'fuzz', title: '3. Bad-input fuzzing', timeout: [60, 300], keys: ['seed', 'cases', 'slowest single call'] },
  { name: 'handlers', title: '4. Faulty handlers', timeout: [60, 240], keys: ['scenarios', 'scenarios failing'] },
  { name: 'integrity', title: '5. Integrity under partial writes and pauses', timeout: [90, 900], keys: ['bytes per transport', 'TCP: throughput client->server (incl. hashing both ends)', 'UNIX: throughput client->server (incl. hashing both ends)'] },
  { name: 'abrupt', title: '6. Abrupt peers', timeout: [60, 180], keys: ['c) stop(true) with 1000 active connections: stop(true) duration'] },
  { name: 'lifetime', title: '7. Lifetime: workers and process exit', timeout: [60, 150], keys: ['A) workers run', 'A) duration'] },
]

function runArea(area) {
  return new Promise((resolve) => {
    const file = join(here, `${area.name}.mjs`)
    const args = [...(quick ? ['--quick'] : []), ...(seed !== undefined ? ['--seed', seed] : [])]
    // detached: its own process group, so a timeout also ends the area's own child processes
    const child = spawn('bash', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'bash', process.execPath, '--expose-gc', file, ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    const res = { area, checks: [], figures: [], tables: [], notes: [], stderr: '', code: null, signal: null, timedOut: false, completed: false, start: Date.now() }
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        try {
          if (line.startsWith('@check ')) res.checks.push(JSON.parse(line.slice(7)))
          else if (line.startsWith('@figure ')) res.figures.push(JSON.parse(line.slice(8)))
          else if (line.startsWith('@table ')) res.tables.push(JSON.parse(line.slice(7)))
          else if (line.startsWith('# ')) {
            res.notes.push(line.slice(2))
            if (/^\d+ checks passed, \d+ failed$/.test(line.slice(2))) res.completed = true
          } else if (line.trim()) res.notes.push(line)
        } catch {
          res.notes.push(line)
        }
      }
    })
    child.stderr.on('data', (d) => {
      res.stderr = (res.stderr + d).slice(-6000)
    })
    const killGroup = () => {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
    const timer = setTimeout(() => {
      res.timedOut = true
      killGroup()
    }, area.timeout[quick ? 0 : 1] * 1000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      killGroup() // leftovers of an area that crashed (e.g. a helper child blocked for ever)
      res.code = code
      res.signal = signal
      res.ms = Date.now() - res.start
      const failed = res.checks.filter((c) => !c.ok).length
      const clean = !res.timedOut && signal === null && res.completed && res.checks.length > 0 && (code === 0 ? failed === 0 : code === 1 && failed > 0)
      let why = ''
      if (res.timedOut) why = `hang: killed after the ${area.timeout[quick ? 0 : 1]} s area timeout`
      else if (signal) why = `crashed: killed by ${signal}`
      else if (!res.completed) why = `crashed: exit code ${code} before finishing`
      else if (code !== 0 && code !== 1) why = `crashed: exit code ${code}`
      else if (code === 1 && failed === 0) why = 'exit code 1 without a failed check'
      res.checks.push({ name: 'process ran to completion (no crash, abort or hang)', ok: clean, detail: clean ? `exit ${code}, ${(res.ms / 1000).toFixed(1)} s` : `${why}${res.stderr ? '; stderr: ' + res.stderr.slice(-800) : ''}` })
      resolve(res)
    })
  })
}

function fmtFig(f) {
  return `${typeof f.value === 'number' ? f.value.toLocaleString('en-US') : f.value}${f.unit ? ' ' + f.unit : ''}`
}

const esc = (s) => String(s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')

function machine() {
  const cpus = os.cpus()
  let commit = ''
  try {
    const git = (...a) => execFileSync('git', ['-C', root, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    commit = git('rev-parse', '--short', 'HEAD')
    const dirty = git('status', '--porcelain', '--', 'src', 'index.js', 'binding.js')
    if (dirty) commit += ' (with local changes)'
  } catch {}
  let hardFd = ''
  try {
    hardFd = execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {}
  return {
    cpu: `${cpus[0]?.model ?? '?'} × ${cpus.length}`,
    mem: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    bunnet: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    commit,
    hardFd,
  }
}

function writeResults(results, wallMs, passed, failed) {
  const m = machine()
  const L = []
  L.push('# bunnet stress and fault suite — results', '')
  L.push(`Generated by \`node stress/run.mjs${quick ? ' --quick' : ''}${only ? ' --only ' + only.join(',') : ''}${seed !== undefined ? ' --seed ' + seed : ''}\`; the suite itself is described in each \`stress/<area>.mjs\` header.`, '')
  L.push('| | |', '|---|---|')
  L.push(`| date | ${new Date().toISOString()} |`)
  L.push(`| mode | ${quick ? 'quick (CI)' : 'full'} |`)
  L.push(`| machine | ${m.cpu}, ${m.mem} RAM, ${m.os} |`)
  L.push(`| node | ${m.node} |`)
  L.push(`| bunnet | ${m.bunnet}${m.commit ? ` (git ${m.commit})` : ''} |`)
  L.push(`| fd limit | soft raised to the hard limit (${m.hardFd}) for every area |`)
  L.push(`| wall time | ${(wallMs / 1000).toFixed(1)} s |`)
  L.push(`| checks | **${passed} passed, ${failed} failed** |`, '')
  L.push('| area | result | duration | checks | key figures |', '|---|---|---:|---:|---|')
  for (const r of results) {
    const f = r.checks.filter((c) => !c.ok).length
    const keys = r.area.keys.map((k) => r.figures.find((x) => x.name === k)).filter(Boolean).map((x) => `${x.name}: ${fmtFig(x)}`).join('; ')
    L.push(`| ${r.area.name} | ${f ? '**FAIL**' : 'PASS'} | ${(r.ms / 1000).toFixed(1)} s | ${r.checks.length - f}/${r.checks.length} | ${esc(keys)} |`)
  }
  L.push('')
  const failing = results.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => [r.area.name, c]))
  if (failing.length) {
    L.push('## Failed checks', '')
    for (const [a, c] of failing) L.push(`- **${a}** — ${esc(c.name)}: ${esc(c.detail)}`)
    L.push('')
  }
  for (const r of results) {
    L.push(`## ${r.area.title} (\`stress/${r.area.name}.mjs\`)`, '')
    const churnBound = r.area.name === 'churn' && r.figures.find((x) => x.name === 'time-bounded')
    if (churnBound && String(churnBound.value).startsWith('yes')) L.push(`> Time-bounded run: ${esc(churnBound.value)}; see "cycles completed".`, '')
    if (r.figures.length) {
      L.push('| figure | value |', '|---|---:|')
      for (const f of r.figures) L.push(`| ${esc(f.name)} | ${esc(fmtFig(f))} |`)
      L.push('')
    }
    L.push('| | check | detail |', '|---|---|---|')
    for (const c of r.checks) L.push(`| ${c.ok ? '✅' : '❌'} | ${esc(c.name)} | ${esc(c.detail)} |`)
    L.push('')
    const ran = r.checks[r.checks.length - 1]
    if (!ran.ok && r.stderr) {
      L.push('<details><summary>stderr of the area process (last 6,000 characters)</summary>', '', '```', r.stderr.replace(/```/g, "'''"), '```', '', '</details>', '')
    }
    for (const t of r.tables) {
      L.push(`<details><summary>${esc(t.title)} (${t.rows.length} rows)</summary>`, '')
      L.push(`| ${t.header.map(esc).join(' | ')} |`, `|${t.header.map(() => '---').join('|')}|`)
      for (const row of t.rows) L.push(`| ${row.map(esc).join(' | ')} |`)
      L.push('', '</details>', '')
    }
  }
  writeFileSync(join(here, 'RESULTS.md'), L.join('\n'))
}

const t0 = Date.now()
const results = []
console.log(`bunnet stress suite, ${quick ? 'quick' : 'full'} mode, node ${process.version}`)
for (const area of AREAS) {
  if (only && !only.includes(area.name)) continue
  const r = await runArea(area)
  results.push(r)
  const f = r.checks.filter((c) => !c.ok)
  const keys = area.keys.map((k) => r.figures.find((x) => x.name === k)).filter(Boolean).map((x) => `${x.name.replace(/ \(.*\)$/, '')}: ${fmtFig(x)}`).join(', ')
  console.log(`${f.length ? 'FAIL' : 'PASS'} ${area.name.padEnd(9)} ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.checks.length - f.length}/${r.checks.length} checks${keys ? '  ' + keys : ''}`)
  for (const c of f) console.log(`     ✗ ${c.name}: ${String(c.detail).slice(0, 300)}`)
}
const passed = results.reduce((n, r) => n + r.checks.filter((c) => c.ok).length, 0)
const failed = results.reduce((n, r) => n + r.checks.filter((c) => !c.ok).length, 0)
const wall = Date.now() - t0
writeResults(results, wall, passed, failed)
console.log(`wall time ${(wall / 1000).toFixed(1)} s; details in stress/RESULTS.md`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
