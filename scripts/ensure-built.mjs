// Builds the release addon when it is missing or older than the Rust sources, so that a fresh
// clone needs only `npm install` and `npm test`. Never rebuilds an up-to-date addon.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const addon = readdirSync(root).find((f) => f.startsWith('bunnet.') && f.endsWith('.node'))

function newest(dir) {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

const inputs = Math.max(newest(join(root, 'src')), statSync(join(root, 'Cargo.toml')).mtimeMs, statSync(join(root, 'build.rs')).mtimeMs)
const stale = !addon || !existsSync(join(root, 'binding.js')) || statSync(join(root, addon)).mtimeMs < inputs
if (stale) {
  const napi = join(root, 'node_modules', '.bin', 'napi')
  if (!existsSync(napi)) {
    console.error('bunnet: @napi-rs/cli is not installed; run `npm install` in the bunnet folder first')
    process.exit(1)
  }
  console.error('bunnet: building the native addon (release)...')
  execFileSync(napi, ['build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'], { cwd: root, stdio: 'inherit' })
}
