// TLS verification that must hold on every path (spec §6.2): a resumed session carries the verdict
// of the handshake it came from and resumes only the name it was verified for; a server that asks
// for certificates verifies every client in full.
import tls from 'node:tls'

import { connect, deferred, listen, until } from '../helpers.mjs'
import { pem, serverTls } from '../tls-fixtures.mjs'

/** Connects twice to `port` with `options`, the second time offering the first one's session; resolves what each handshake reported. */
async function twice(port, options) {
  const seen = []
  let token
  for (const serverName of options.names) {
    const done = deferred()
    await connect({
      hostname: '127.0.0.1',
      port,
      tls: { ...options.tls, serverName },
      socket: {
        open(s) {
          if (token) s.setSession(token)
        },
        handshake: (s, ok, err) => seen.push([serverName, ok, err?.code ?? null, s.authorized, s.isSessionReused()]),
        // TLS 1.3 tickets arrive after the handshake: take the session once data came in.
        data(s) {
          token = s.getSession()
          s.end()
        },
        close: () => done.resolve(),
      },
    })
    await done.promise
  }
  return seen
}

export async function aResumedSessionKeepsTheFailedVerification(t) {
  // rejectUnauthorized false against a self-signed server: the first handshake reports the
  // failure; the resumed one skipped verification and reported `authorized` before the fix.
  const l = listen({ hostname: '127.0.0.1', port: 0, tls: { key: pem('self-key.pem'), cert: pem('self.pem') }, socket: { open: (s) => s.write('hi'), data() {} } })
  t.teardown(() => l.stop(true))
  const seen = await twice(l.port, { names: ['localhost', 'localhost'], tls: { rejectUnauthorized: false } })
  t.deepEqual(seen, [
    ['localhost', true, 'DEPTH_ZERO_SELF_SIGNED_CERT', false, false],
    ['localhost', true, 'DEPTH_ZERO_SELF_SIGNED_CERT', false, true],
  ])
}

export async function aSessionDoesNotResumeAnotherName(t) {
  // A node:tls (OpenSSL) server resumes whatever session is offered, so the client must not offer
  // a session verified for `localhost` to `other.example`: the hostname check would be skipped.
  const srv = tls.createServer(serverTls(), (s) => {
    s.on('error', () => {})
    s.write('hi')
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  const seen = await twice(srv.address().port, { names: ['localhost', 'other.example'], tls: { ca: pem('ca.pem') } })
  t.deepEqual(seen[0], ['localhost', true, null, true, false])
  t.deepEqual(seen[1].slice(0, 4), ['other.example', false, 'ERR_TLS_CERT_ALTNAME_INVALID', false])
}

export async function aServerAskingForCertificatesVerifiesEveryClient(t) {
  // requestCert with rejectUnauthorized false and an untrusted client certificate: every
  // connection, the second one offering the first one's session too, is unauthorized.
  const outcomes = []
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: serverTls({ ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: false }),
    socket: { handshake: (s, ok, err) => outcomes.push([ok, err?.code ?? null, s.authorized, s.isSessionReused()]), open: (s) => s.write('hi'), data() {} },
  })
  t.teardown(() => l.stop(true))
  await twice(l.port, { names: ['localhost', 'localhost'], tls: { ca: pem('ca.pem'), key: pem('untrusted-key.pem'), cert: pem('untrusted.pem') } })
  await until(() => outcomes.length === 2)
  t.deepEqual(outcomes, [
    [true, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', false, false],
    [true, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', false, false],
  ])
}

/** The client's view of one handshake with a bunnet server using `serverOpts`. */
async function outcome(t, serverOpts, clientTls) {
  const l = listen({ hostname: '127.0.0.1', port: 0, tls: serverOpts, socket: { data() {} } })
  t.teardown(() => l.stop(true))
  const hs = deferred()
  const s = await connect({
    hostname: '127.0.0.1',
    port: l.port,
    tls: clientTls,
    socket: { handshake: (s, ok, err) => hs.resolve([ok, err?.code ?? null, s.authorized]), data() {}, close: () => hs.resolve('closed') },
  })
  t.teardown(() => s.terminate())
  return hs.promise
}

export async function chainsAreJudgedAsOpenSslJudgesThem(t) {
  const leaf = { key: pem('chain-leaf-key.pem'), cert: pem('chain-leaf.pem') }
  const withInter = { ...leaf, cert: Buffer.concat([pem('chain-leaf.pem'), pem('inter.pem')]) }
  const withRoot = { ...leaf, cert: Buffer.concat([pem('chain-leaf.pem'), pem('inter.pem'), pem('ca.pem')]) }
  const lax = { serverName: 'localhost', rejectUnauthorized: false }
  // The full chain to the trusted root.
  t.deepEqual(await outcome(t, withInter, { ca: pem('ca.pem'), serverName: 'localhost' }), [true, null, true])
  // Trusting the intermediate alone is a partial chain: refused by default (webpki accepted it).
  t.deepEqual(await outcome(t, leaf, { ca: pem('inter.pem'), serverName: 'localhost' }), [false, 'UNABLE_TO_GET_ISSUER_CERT', false])
  // Unknown issuers, named as OpenSSL names them.
  t.deepEqual(await outcome(t, withInter, { ...lax, ca: pem('other-ca.pem') }), [true, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', false])
  t.deepEqual(await outcome(t, withRoot, { ...lax, ca: pem('other-ca.pem') }), [true, 'SELF_SIGNED_CERT_IN_CHAIN', false])
  t.deepEqual(await outcome(t, leaf, { ...lax, ca: pem('other-ca.pem') }), [true, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', false])
}

export async function aTrustedSelfSignedCaCertificateIsAccepted(t) {
  // `openssl req -x509` marks its certificate CA:TRUE; given as `ca` it is trusted as it stands
  // (webpki refused a CA certificate as the server's own). Its name still counts.
  const server = { key: pem('selfca-key.pem'), cert: pem('selfca.pem') }
  t.deepEqual(await outcome(t, server, { ca: pem('selfca.pem'), serverName: 'localhost' }), [true, null, true])
  t.deepEqual(await outcome(t, server, { ca: pem('selfca.pem'), serverName: 'other.example', rejectUnauthorized: false }), [
    false,
    'ERR_TLS_CERT_ALTNAME_INVALID',
    false,
  ])
}

export async function aCertificateWithoutAltNamesIsCheckedByItsCommonName(t) {
  // Node's checkServerIdentity falls back to the subject CN when there is no subjectAltName.
  const server = { key: pem('cn-only-key.pem'), cert: pem('cn-only.pem') }
  t.deepEqual(await outcome(t, server, { ca: pem('ca.pem'), serverName: 'localhost' }), [true, null, true])
  t.deepEqual((await outcome(t, server, { ca: pem('ca.pem'), serverName: 'other.example', rejectUnauthorized: false })).slice(0, 2), [
    false,
    'ERR_TLS_CERT_ALTNAME_INVALID',
  ])
}
