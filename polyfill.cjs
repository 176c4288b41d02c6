'use strict'
// `require("bunnet/polyfill")`: see polyfill.mjs (same behaviour for CommonJS).
if (typeof globalThis.Bun?.connect !== 'function' || typeof globalThis.Bun?.listen !== 'function') {
  const { connect, listen } = require('./index.js')
  const bun = (globalThis.Bun ??= {})
  if (typeof bun.connect !== 'function') bun.connect = connect
  if (typeof bun.listen !== 'function') bun.listen = listen
}
