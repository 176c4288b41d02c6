// STARTTLS, SMTP-style: the connection starts in plaintext, the client asks to upgrade, and
// both sides switch the same connection to TLS with upgradeTLS().
// Run: node examples/starttls.mjs
import { readFileSync } from 'node:fs'
import { connect, listen } from 'bunnet'

const pem = (name) => readFileSync(new URL(`../__test__/fixtures/tls/${name}`, import.meta.url))

const server = listen({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open: (socket) => socket.write('220 example ESMTP\r\n'),
    data(socket, data) {
      if (String(data).startsWith('STARTTLS')) {
        socket.write('220 ready to start TLS\r\n')
        socket.upgradeTLS({
          tls: { key: pem('server-key.pem'), cert: pem('server.pem') },
          socket: {
            data: (tls, line) => tls.write(`250 secure echo: ${line}`),
          },
        })
      }
    },
  },
})

await connect({
  hostname: '127.0.0.1',
  port: server.port,
  socket: {
    data(socket, data) {
      const text = String(data)
      console.log(`client (plain): ${text.trim()}`)
      if (text.startsWith('220 example')) socket.write('STARTTLS\r\n')
      else if (text.startsWith('220 ready')) {
        socket.upgradeTLS({
          tls: { ca: pem('ca.pem'), serverName: 'localhost' },
          socket: {
            handshake(tls, success) {
              console.log(`client: TLS handshake ${success ? 'ok' : 'failed'} (${tls.getTLSVersion()})`)
              tls.write('hello\r\n')
            },
            data(tls, reply) {
              console.log(`client (TLS): ${String(reply).trim()}`)
              tls.end()
              server.stop(true)
            },
          },
        })
      }
    },
  },
})
