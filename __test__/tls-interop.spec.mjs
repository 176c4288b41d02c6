// bunnet TLS against real peers: curl and `openssl s_client -starttls smtp` against bunnet
// servers, and bunnet's client against `openssl s_server`.
import { execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import test from 'ava'

import { connect, deferred, listen } from './helpers.mjs'

const run = promisify(execFile)
const fixture = (n) => fileURLToPath(new URL(`./fixtures/tls/${n}`, import.meta.url))
const pem = (n) => readFileSync(fixture(n))
const serverTls = { key: pem('server-key.pem'), cert: pem('server.pem') }

test('curl fetches over HTTPS from a bunnet TLS server', async (t) => {
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: { ...serverTls, ALPNProtocols: '\x08http/1.1' },
    socket: {
      data(s, d) {
        if (String(d).includes('\r\n\r\n')) s.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nbunnet')
      },
    },
  })
  t.teardown(() => l.stop(true))
  const { stdout } = await run('curl', ['-sS', '--cacert', fixture('ca.pem'), '--resolve', `localhost:${l.port}:127.0.0.1`, `https://localhost:${l.port}/`])
  t.is(stdout, 'bunnet')
})

test('openssl s_client -starttls smtp upgrades an accepted bunnet socket', async (t) => {
  const upgraded = deferred()
  const l = listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open: (s) => s.write('220 bunnet ESMTP\r\n'),
      data(s, d) {
        const line = String(d)
        if (/^EHLO/i.test(line)) s.write('250-bunnet\r\n250 STARTTLS\r\n')
        else if (/^STARTTLS/i.test(line)) {
          s.write('220 ready\r\n')
          s.upgradeTLS({
            tls: serverTls,
            socket: {
              handshake: (x, ok) => upgraded.resolve(ok),
              data: (x, d2) => x.write(`echo:${d2}`),
            },
          })
        }
      },
    },
  })
  t.teardown(() => l.stop(true))
  const child = spawn('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${l.port}`, '-servername', 'localhost', '-CAfile', fixture('ca.pem'), '-quiet', '-verify_return_error'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c) => {
    out += c
  })
  t.true(await upgraded.promise)
  child.stdin.write('ping\n')
  const deadline = Date.now() + 5000
  while (!out.includes('echo:ping') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  child.kill()
  t.true(out.includes('echo:ping'), out)
})

test('bunnet client talks to openssl s_server', async (t) => {
  // s_server needs a port number up front: pick one below the ephemeral range (where no other
  // test's listener can be) and try another if it is taken (s_server then exits).
  let port
  for (let attempt = 0; attempt < 10 && !port; attempt++) {
    const p = 10000 + Math.floor(Math.random() * 20000)
    const server = spawn('openssl', ['s_server', '-accept', String(p), '-cert', fixture('server.pem'), '-key', fixture('server-key.pem'), '-www', '-naccept', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => server.kill())
    const up = await new Promise((resolve) => {
      server.stdout.on('data', (c) => String(c).includes('ACCEPT') && resolve(true))
      server.once('exit', () => resolve(false))
    })
    if (up) port = p
  }
  t.truthy(port, 'openssl s_server started')
  const body = deferred()
  let text = ''
  const hs = deferred()
  const s = await connect({
    hostname: '127.0.0.1',
    port,
    tls: { ca: pem('ca.pem'), serverName: 'localhost' },
    socket: {
      handshake: (x, ok, err) => hs.resolve([ok, err]),
      data: (x, d) => {
        text += d
      },
      close: () => body.resolve(text),
    },
  })
  t.deepEqual(await hs.promise, [true, null])
  t.true(s.authorized)
  s.write('GET / HTTP/1.0\r\n\r\n')
  const page = await body.promise
  t.regex(page, /HTTP\/1\.0 200 ok/i)
  t.regex(page, /TLSv1\.3|Protocol version/)
})
