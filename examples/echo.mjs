// An echo server and a client that talks to it, on an ephemeral port.
// Run: node examples/echo.mjs   (the same file runs under Bun with Bun.listen/Bun.connect)
import { connect, listen } from 'bunnet'

const server = listen({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(socket) {
      console.log(`server: client connected from ${socket.remoteAddress}:${socket.remotePort}`)
    },
    data(socket, data) {
      socket.write(data) // echo back; returns the bytes the kernel took
    },
    close() {
      console.log('server: client gone')
    },
  },
})
console.log(`server: listening on ${server.hostname}:${server.port}`)

const client = await connect({
  hostname: '127.0.0.1',
  port: server.port,
  socket: {
    data(socket, data) {
      console.log(`client: got back "${data}"`)
      socket.end()
    },
    close() {
      console.log('client: closed')
      server.stop()
    },
  },
})
client.write('hello, bunnet')
