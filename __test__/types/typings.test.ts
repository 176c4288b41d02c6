// Type-level test of bunnet's public typings (index.d.ts). Only type-checked (`npm run
// typecheck`), never run. `// @ts-expect-error` lines must stay errors.

import { Buffer } from "node:buffer";
import {
  connect,
  listen,
  Socket,
  SocketListener,
  type BinaryType,
  type SocketHandler,
  type SocketAddress,
  type TCPSocket,
  type TCPSocketListener,
  type TLSOptions,
  type TLSSocket,
  type UnixSocketListener,
} from "bunnet";
import * as relative from "../../index.js";

// --- helpers -----------------------------------------------------------------------------------

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_ok: T): void {}
function sink(..._values: unknown[]): void {}

// --- module shape ------------------------------------------------------------------------------

// The package self-reference and the relative path resolve to the same declarations.
assertType<Equal<typeof relative.connect, typeof connect>>(true);
assertType<Equal<typeof relative.listen, typeof listen>>(true);
assertType<Equal<typeof relative.Socket, typeof Socket>>(true);

// The ESM entry (import condition) is typed by the same file.
async function esmEntry() {
  const esm = await import("bunnet");
  assertType<Equal<typeof esm.connect, typeof connect>>(true);
  assertType<Equal<typeof esm.SocketListener, typeof SocketListener>>(true);
}

// --- connect: Data inference -------------------------------------------------------------------

async function dataInference() {
  const s = await connect({
    hostname: "127.0.0.1",
    port: 1,
    data: { id: 1 },
    socket: {
      data(socket, buf) {
        assertType<Equal<typeof socket, Socket<{ id: number }>>>(true);
        assertType<Equal<typeof buf, Buffer>>(true);
        const id: number = socket.data.id;
        assertType<Equal<typeof this, Socket<{ id: number }>>>(true);
        sink(id);
      },
      close(socket, error) {
        assertType<Equal<typeof error, Error | undefined>>(true);
        sink(socket.data.id);
      },
    },
  });
  assertType<Equal<typeof s, Socket<{ id: number }>>>(true);
  s.data = { id: 2 };
  // @ts-expect-error wrong data shape
  s.data = { id: "x" };

  // Without `data`, Data defaults to undefined.
  const plain = await connect({ hostname: "localhost", port: 1, socket: { data() {} } });
  assertType<Equal<typeof plain, Socket<undefined>>>(true);
  assertType<Equal<typeof plain.data, undefined>>(true);

  // Explicit Data.
  const explicit = await connect<{ n: number }>({
    hostname: "localhost",
    port: 1,
    data: { n: 1 },
    socket: { drain(sock) { sink(sock.data.n); } },
  });
  assertType<Equal<typeof explicit, Socket<{ n: number }>>>(true);

  // Unix overload.
  const u = await connect({ unix: "/tmp/x.sock", data: "tag", socket: { data() {} } });
  assertType<Equal<typeof u, Socket<string>>>(true);
}

// --- binaryType narrowing ----------------------------------------------------------------------

async function binaryTypes() {
  await connect({
    hostname: "127.0.0.1",
    port: 1,
    socket: {
      binaryType: "arraybuffer",
      data(_s, chunk) {
        assertType<Equal<typeof chunk, ArrayBuffer>>(true);
      },
    },
  });
  await connect({
    unix: "/tmp/x.sock",
    socket: {
      binaryType: "uint8array",
      data(_s, chunk) {
        assertType<Equal<typeof chunk, Uint8Array>>(true);
      },
    },
  });
  await connect({
    hostname: "127.0.0.1",
    port: 1,
    socket: {
      binaryType: "buffer",
      data(_s, chunk) {
        assertType<Equal<typeof chunk, Buffer>>(true);
      },
    },
  });
  listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      binaryType: "arraybuffer",
      data(_s, chunk) {
        assertType<Equal<typeof chunk, ArrayBuffer>>(true);
      },
    },
  });

  const handler: SocketHandler<{ k: string }, "uint8array"> = {
    binaryType: "uint8array",
    data(s, chunk) {
      assertType<Equal<typeof chunk, Uint8Array>>(true);
      sink(s.data.k);
    },
  };
  const s = await connect({ hostname: "h", port: 1, data: { k: "v" }, socket: handler });
  assertType<Equal<typeof s, Socket<{ k: string }>>>(true);

  // reload() takes handlers with any binaryType.
  s.reload({ socket: { binaryType: "arraybuffer", data(_x, c) { assertType<Equal<typeof c, ArrayBuffer>>(true); } } });
  s.reload({ socket: { data(_x, c) { assertType<Equal<typeof c, Buffer>>(true); } } });

  const bt: BinaryType = "uint8array";
  sink(bt);
}

// --- listen overloads --------------------------------------------------------------------------

function listeners() {
  const tcp = listen({ hostname: "127.0.0.1", port: 0, data: { room: "a" }, socket: { data(s) { sink(s.data.room); } } });
  assertType<Equal<typeof tcp, TCPSocketListener<{ room: string }>>>(true);
  const port: number = tcp.port;
  const host: string = tcp.hostname;
  tcp.data = { room: "b" };
  sink(port, host, tcp.fd);
  tcp.reload({ socket: { drain() {} } });
  tcp.ref();
  tcp.unref();
  tcp.stop();
  tcp.stop(true);
  const addr: Partial<SocketAddress> = {};
  tcp.getsockname(addr);

  const unix = listen({ unix: "/tmp/y.sock", socket: { data() {} } });
  assertType<Equal<typeof unix, UnixSocketListener<undefined>>>(true);
  const path: string = unix.unix;
  sink(path);
  // @ts-expect-error a unix listener has no port
  sink(unix.port);
  // @ts-expect-error a TCP listener has no unix path
  sink(tcp.unix);

  {
    using disposable = listen({ hostname: "::", port: 0, socket: { data() {} } });
    disposable[Symbol.dispose]();
  }

  const tls: TLSOptions = {
    key: "-----BEGIN PRIVATE KEY-----",
    cert: [Buffer.from("pem"), new Uint8Array(1), new ArrayBuffer(1)],
    ca: [new DataView(new ArrayBuffer(1))],
    passphrase: "p",
    serverName: "localhost",
    servername: "localhost",
    rejectUnauthorized: false,
    requestCert: true,
    ALPNProtocols: "\x02h2",
    secureOptions: 0x20000000,
    ciphers: "TLS_AES_128_GCM_SHA256",
    lowMemoryMode: false,
    dhParamsFile: "/dev/null",
    crl: "x",
    clientRenegotiationLimit: 3,
    clientRenegotiationWindow: 600,
  };
  listen({ hostname: "localhost", port: 0, tls, exclusive: true, allowHalfOpen: true, socket: { data() {} } });
  listen({ unix: "/tmp/z.sock", tls: true, socket: { data() {} } });
}

// --- Socket members ----------------------------------------------------------------------------

async function socketMembers() {
  const s = await connect({ hostname: "127.0.0.1", port: 1, tls: { serverName: "x" }, socket: { data() {} } });

  const n1: number = s.write("hello");
  const n2: number = s.write(new Uint8Array(4), 1, 2);
  const n3: number = s.write(new ArrayBuffer(2));
  const n4: number = s.write(new SharedArrayBuffer(2));
  const n5: number = s.write(Buffer.from("x"));
  const n6: number = s.write();
  const n7: number = s.end();
  const n8: number = s.end("bye", 0, 3);
  sink(n1, n2, n3, n4, n5, n6, n7, n8);

  s.shutdown();
  s.shutdown(true);
  s.terminate();
  s.close();
  s.flush();
  s.timeout(5);
  s.ref();
  s.unref();
  s.pause();
  s.resume();
  const nd: boolean = s.setNoDelay();
  const ka: boolean = s.setKeepAlive(true, 1000);
  sink(nd, ka);

  const rs: -2 | -1 | 0 | 1 | 2 = s.readyState;
  const bw: number = s.bytesWritten;
  const ra: string = s.remoteAddress;
  const rp: number = s.remotePort;
  const rf: "IPv4" | "IPv6" = s.remoteFamily;
  const la: string = s.localAddress;
  const lp: number = s.localPort;
  const lf: "IPv4" | "IPv6" = s.localFamily;
  const l: SocketListener<unknown> | undefined = s.listener;
  const au: boolean = s.authorized;
  const alpn: string | false | null = s.alpnProtocol;
  const fd: number = s.fd;
  sink(rs, bw, ra, rp, rf, la, lp, lf, l, au, alpn, fd);

  // @ts-expect-error readyState is read-only
  s.readyState = 1;
  // @ts-expect-error bytesWritten is read-only
  s.bytesWritten = 0;

  // TLS methods.
  sink(
    s.getPeerCertificate().subject,
    s.getCertificate(),
    s.getCipher().standardName,
    s.getTLSVersion().startsWith("TLS"),
    s.getEphemeralKeyInfo(),
    s.getSharedSigalgs().length,
    s.getTLSFinishedMessage()?.length,
    s.getTLSPeerFinishedMessage()?.length,
    s.getTLSTicket()?.length,
    s.isSessionReused(),
    s.exportKeyingMaterial(32, "label"),
    s.exportKeyingMaterial(32, "label", Buffer.alloc(1)),
    s.getAuthorizationError()?.message,
    s.setMaxSendFragment(1024),
    s.getServername(),
  );
  const session = s.getSession();
  if (session) s.setSession(session);
  s.setSession("raw");
  s.disableRenegotiation();
  s.renegotiate();
  s.setVerifyMode(true, false);
  s.setServername("example.com");

  // STARTTLS.
  const [raw, tlsSock] = s.upgradeTLS({
    data: { secure: true },
    tls: true,
    socket: {
      binaryType: "uint8array",
      data(sock, chunk) {
        assertType<Equal<typeof chunk, Uint8Array>>(true);
        sink(sock.data.secure);
      },
    },
  });
  assertType<Equal<typeof raw, Socket<{ secure: boolean }>>>(true);
  assertType<Equal<typeof tlsSock, Socket<{ secure: boolean }>>>(true);

  // Disposable.
  {
    using d = await connect({ hostname: "127.0.0.1", port: 1, socket: { data() {} } });
    d[Symbol.dispose]();
  }

  // Aliases and runtime classes.
  const tcpSock: TCPSocket<undefined> = s;
  const tlsAlias: TLSSocket = s;
  const back: Socket = tcpSock;
  sink(tlsAlias, back);
  const unknownValue: unknown = s;
  if (unknownValue instanceof Socket) {
    assertType<Equal<typeof unknownValue, Socket<any>>>(true);
  }
  const proto: Socket<any> = Socket.prototype;
  const lproto: SocketListener<any> = SocketListener.prototype;
  sink(proto, lproto);
  // @ts-expect-error the native classes cannot be constructed
  new Socket();
  // @ts-expect-error the native classes cannot be constructed
  new SocketListener();
}

// --- invalid calls -----------------------------------------------------------------------------

async function invalidCalls(s: Socket) {
  // @ts-expect-error `socket` is required
  await connect({ hostname: "127.0.0.1", port: 1 });
  // @ts-expect-error `socket` is required (unix)
  await connect({ unix: "/tmp/x.sock" });
  // @ts-expect-error neither hostname nor unix
  await connect({ port: 1, socket: { data() {} } });
  // @ts-expect-error `port` is required with hostname
  await connect({ hostname: "127.0.0.1", socket: { data() {} } });
  // @ts-expect-error write() takes no numbers
  s.write(123);
  // @ts-expect-error end() takes no objects
  s.end({});
  // @ts-expect-error listen needs `hostname` or `unix`
  listen({ port: 0, socket: { data() {} } });
  // @ts-expect-error listen needs `socket`
  listen({ hostname: "127.0.0.1", port: 0 });
  // @ts-expect-error unknown binaryType
  await connect({ hostname: "127.0.0.1", port: 1, socket: { binaryType: "blob", data() {} } });
  // @ts-expect-error unknown binaryType on listen
  listen({ hostname: "127.0.0.1", port: 0, socket: { binaryType: "dataview", data() {} } });
  // @ts-expect-error tls must be an object or boolean
  await connect({ hostname: "127.0.0.1", port: 1, tls: "yes", socket: { data() {} } });
  // @ts-expect-error ALPNProtocols is wire format, not an array
  const badTls: TLSOptions = { ALPNProtocols: ["h2"] };
  // @ts-expect-error timeout needs a number
  s.timeout();
  // @ts-expect-error upgradeTLS needs `tls`
  s.upgradeTLS({ socket: { data() {} } });
  // @ts-expect-error the data handler does not get a string
  await connect({ hostname: "h", port: 1, socket: { data(_s, chunk: string) { sink(chunk); } } });
  sink(badTls);
}

sink(esmEntry, dataInference, binaryTypes, listeners, socketMembers, invalidCalls);
