// `bunnet/polyfill` only has side effects: it installs `Bun.connect`/`Bun.listen` on Node.
export {}
