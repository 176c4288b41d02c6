// A TLS echo server and a client that verifies it against a private CA (the test fixtures),
// negotiates ALPN and prints what the session reports.
// Run: node examples/tls.mjs
import { readFileSync } from 'node:fs'
import { connect, listen } from 'bunnet'

const pem = (name) => readFileSync(new URL(`../__test__/fixtures/tls/${name}`, import.meta.url))

const server = listen({
  hostname: '127.0.0.1',
  port: 0,
  tls: { key: pem('server-key.pem'), cert: pem('server.pem'), ALPNProtocols: '\x08http/1.1' },
  socket: {
    data(socket, data) {
      socket.write(data)
    },
  },
})

await connect({
  hostname: 'localhost',
  port: server.port,
  tls: { ca: pem('ca.pem'), ALPNProtocols: '\x08http/1.1' },
  socket: {
    handshake(socket, success, authorizationError) {
      const cert = socket.getPeerCertificate()
      console.log(`client: handshake ${success ? 'ok' : `failed (${authorizationError?.code})`}, ${socket.getTLSVersion()} ${socket.getCipher().name}, ALPN ${socket.alpnProtocol}`)
      console.log(`client: server certificate CN=${cert.subject.CN} issued by ${cert.issuer.CN}, SAN ${cert.subjectaltname}`)
      socket.write('hello over TLS')
    },
    data(socket, data) {
      console.log(`client: got back "${data}"`)
      socket.end()
      server.stop()
    },
  },
})
