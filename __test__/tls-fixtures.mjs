// TLS fixtures shared by the TLS scenario modules: the test certificates, listeners and a
// connect that waits for the handshake.
import { readFileSync } from 'node:fs'

import { connect, deferred, listen } from './helpers.mjs'

export const pem = (n) => readFileSync(new URL(`./fixtures/tls/${n}`, import.meta.url))
export const serverTls = (extra = {}) => ({ key: pem('server-key.pem'), cert: pem('server.pem'), ...extra })

/** A TLS echo listener recording its handshake outcome. */
export function tlsServer(t, tls = serverTls(), extra = {}) {
  const seen = { handshakes: [], opens: 0 }
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    tls,
    socket: {
      open: () => seen.opens++,
      handshake: (s, ok, err) => seen.handshakes.push([ok, err?.code ?? null, s.authorized]),
      data: (s, d) => s.write(d),
      ...extra,
    },
  })
  t.teardown(() => l.stop(true))
  return { l, seen }
}

/** Connects with a handshake handler; resolves { s, ok, err } at the handshake. */
export async function handshake(t, port, tls, extra = {}) {
  const hs = deferred()
  const log = []
  const s = await connect({
    hostname: '127.0.0.1',
    port,
    tls,
    socket: {
      open: () => log.push('open'),
      handshake: (s, ok, err) => {
        log.push(`handshake ${ok}`)
        hs.resolve({ ok, err })
      },
      data: (s, d) => log.push(`data ${d}`),
      close: () => log.push('close'),
      ...extra,
    },
  })
  t.teardown(() => s.terminate())
  return { s, log, ...(await hs.promise) }
}

/** A TLS listener that collects what each connection sends; `conns[i]` resolves at its close. */
export function collectingTlsServer(t, extra = {}) {
  const conns = []
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: serverTls(),
    socket: {
      open(s) {
        s.data = { chunks: [], closed: deferred() }
        conns.push(s.data)
      },
      data: (s, d) => s.data.chunks.push(Buffer.from(d)),
      close: (s, e) => s.data.closed.resolve(e),
      ...extra,
    },
  })
  t.teardown(() => l.stop(true))
  return { l, conns }
}
