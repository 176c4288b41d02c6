// `npm test`: builds the addon if needed, runs the ava suite (TAP), the typings check and the
// examples, and ends with one summary line "N passed, N failed" that CI reads.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)
let passed = 0
let failed = 0

function run(cmd, args, { onLine, timeoutMs = 0 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let buf = ''
    const timer = timeoutMs ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : null
    const feed = (chunk, stream) => {
      stream.write(chunk)
      if (!onLine) return
      buf += chunk
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i))
        buf = buf.slice(i + 1)
      }
    }
    child.stdout.on('data', (c) => feed(String(c), process.stdout))
    child.stderr.on('data', (c) => process.stderr.write(c))
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolve(code === 0 && !signal)
    })
  })
}

function record(name, ok) {
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}`)
  if (ok) passed++
  else failed++
}

/** Runs the ava suite (TAP) with the `node` binary `bin`, counting its tests. */
async function ava(bin, label) {
  let avaPassed = 0
  let avaFailed = 0
  const avaOk = await run(bin, [join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap'], {
    onLine(line) {
      if (/^ok \d+/.test(line)) avaPassed++
      else if (/^not ok \d+/.test(line)) avaFailed++
    },
  })
  passed += avaPassed
  failed += avaFailed
  if (!avaOk && avaFailed === 0) record(`ava run${label} (crashed or timed out)`, false)
}

const built = await run(process.execPath, [join(root, 'scripts', 'ensure-built.mjs')])
if (!built) {
  record('build the addon', false)
} else {
  await ava(process.execPath, '')
  record('rust unit tests: cargo test', await run('cargo', ['test', '--release', '--quiet']))
  record('typings: tsc --noEmit', await run(bin('tsc'), ['--noEmit', '-p', '.']))
  if (process.env.BUNNET_STRESS === '1') {
    // .ci/run sets this: the stress and fault suite in its quick mode (a few minutes).
    record('stress suite (quick): node stress/run.mjs --quick', await run(process.execPath, [join(root, 'stress', 'run.mjs'), '--quick'], { timeoutMs: 10 * 60 * 1000 }))
  }
  for (const ex of ['echo.mjs', 'lines.mjs', 'tls.mjs', 'starttls.mjs']) {
    record(`example: node examples/${ex}`, await run(process.execPath, [join(root, 'examples', ex)], { timeoutMs: 15000 }))
  }
  if (process.env.BUNNET_OTHER_NODES === '1') {
    // .ci/run sets this: the ava suite again on Node 22 and 24 (scripts/other-nodes.mjs), whose
    // libuv versions take other paths in src/poller.rs than Node 20's.
    const { VERSIONS, nodeBinary } = await import('./other-nodes.mjs')
    for (const v of VERSIONS) {
      let bin
      try {
        bin = nodeBinary(v)
      } catch (e) {
        console.error(e.message)
        record(`fetch Node ${v} (scripts/other-nodes.mjs)`, false)
        continue
      }
      await ava(bin, ` on Node ${v}`)
    }
  }
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
