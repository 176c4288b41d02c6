// `import "bunnet/polyfill"`: on Node, installs bunnet's connect/listen as `Bun.connect` and
// `Bun.listen` when they are absent (creating `globalThis.Bun` if needed), so code written for
// Bun's globals runs unchanged. Under Bun it does nothing and never loads the addon.
// Note: a global `Bun` object makes `typeof Bun !== "undefined"` true on Node; code that uses
// that test to detect the runtime will then take its Bun path.
if (typeof globalThis.Bun?.connect !== 'function' || typeof globalThis.Bun?.listen !== 'function') {
  const { connect, listen } = await import('./index.mjs')
  const bun = (globalThis.Bun ??= {})
  if (typeof bun.connect !== 'function') bun.connect = connect
  if (typeof bun.listen !== 'function') bun.listen = listen
}
