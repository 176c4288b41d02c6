// A tiny line protocol: a key-value server speaking "SET key value" / "GET key" / "QUIT", one
// command per line, and a client that runs a short script against it. Shows framing on top of
// unframed `data` chunks and honouring write()'s return value.
// Run: node examples/lines.mjs
import { connect, listen } from 'bunnet'

/** Splits incoming chunks into lines, keeping a partial line in `socket.data.rest`. */
function lines(socket, chunk, onLine) {
  const text = socket.data.rest + chunk
  const parts = text.split('\n')
  socket.data.rest = parts.pop()
  for (const line of parts) onLine(line.replace(/\r$/, ''))
}

/** Writes all of `text`, keeping what the kernel did not take until `drain`. */
function send(socket, text) {
  socket.data.out += text
  const n = socket.write(socket.data.out)
  socket.data.out = n > 0 ? socket.data.out.slice(n) : socket.data.out
}

const store = new Map()
const server = listen({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(s) {
      s.data = { rest: '', out: '' }
    },
    data(s, chunk) {
      lines(s, chunk, (line) => {
        const [cmd, key, ...value] = line.split(' ')
        if (cmd === 'SET') store.set(key, value.join(' ')) && send(s, 'OK\n')
        else if (cmd === 'GET') send(s, store.has(key) ? `VALUE ${store.get(key)}\n` : 'NONE\n')
        else if (cmd === 'QUIT') s.end('BYE\n')
        else send(s, `ERR unknown command ${cmd}\n`)
      })
    },
    drain: (s) => send(s, ''),
  },
})

const script = ['SET greeting hello world', 'GET greeting', 'GET missing', 'PING', 'QUIT']
await connect({
  hostname: '127.0.0.1',
  port: server.port,
  data: { rest: '', out: '' },
  socket: {
    open(s) {
      send(s, script.map((l) => `${l}\n`).join(''))
    },
    data(s, chunk) {
      lines(s, chunk, (reply) => console.log(`client: ${reply}`))
    },
    drain: (s) => send(s, ''),
    close() {
      server.stop()
    },
  },
})
