/// <reference types="node" />
// Public typings of bunnet: Bun's socket API (`Bun.connect` / `Bun.listen`) for Node.js.
// Hand-written; the shapes follow Bun's own typings (bun-types `bun.d.ts`) as quoted in the
// behaviour contract, with comments describing what the runtime actually does.
// `binding.d.ts` is the generated, untyped view of the native classes and is not public API.

import type { Buffer } from "node:buffer";
import type { CipherNameAndProtocol, EphemeralKeyInfo, PeerCertificate } from "node:tls";

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/**
 * Opens a TCP connection to `hostname:port` (`Bun.connect`).
 *
 * Invalid options throw synchronously (never a rejected promise). On success the `open` handler
 * runs and the promise then resolves with that same open {@link Socket}. A failed connection
 * calls `connectError(socket, error)` first (if given) and then rejects the promise; `open`,
 * `error` and `close` do not run.
 *
 * `Data` is inferred from `options.data` and becomes the type of `socket.data`. The second type
 * parameter is inferred from `socket.binaryType` and types the `data` handler's chunk.
 *
 * @returns A promise of the connected socket.
 */
export function connect<Data = undefined, DataBinaryType extends BinaryType = "buffer">(
  options: TCPSocketConnectOptions<Data, DataBinaryType>,
): Promise<Socket<Data>>;
/**
 * Connects to the unix-domain stream socket at `options.unix` (`Bun.connect`).
 *
 * Same promise and handler behaviour as the TCP overload. On unix sockets the address getters
 * (`remoteAddress`, `localPort`, …) are `undefined`.
 *
 * @returns A promise of the connected socket.
 */
export function connect<Data = undefined, DataBinaryType extends BinaryType = "buffer">(
  options: UnixSocketOptions<Data, DataBinaryType>,
): Promise<Socket<Data>>;

/**
 * Listens for TCP connections on `hostname:port` (`Bun.listen`); `port: 0` picks an ephemeral
 * port (read it back from `listener.port`).
 *
 * Synchronous: invalid options and bind failures (`EADDRINUSE`, …) throw. Every accepted socket
 * starts with `socket.data` set to the listener's `data` at accept time.
 *
 * @returns The listening {@link TCPSocketListener}.
 */
export function listen<Data = undefined, DataBinaryType extends BinaryType = "buffer">(
  options: TCPSocketListenOptions<Data, DataBinaryType>,
): TCPSocketListener<Data>;
/**
 * Listens on the unix-domain socket path `options.unix` (`Bun.listen`). The socket file is
 * created by `listen` and removed again by `stop()`.
 *
 * @returns The listening {@link UnixSocketListener}.
 */
export function listen<Data = undefined, DataBinaryType extends BinaryType = "buffer">(
  options: UnixSocketOptions<Data, DataBinaryType>,
): UnixSocketListener<Data>;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/**
 * Options shared by `connect` and `listen`.
 *
 * The `DataBinaryType` parameter is a bunnet addition (defaulting to Bun's `"buffer"`) so that
 * `socket.binaryType` narrows the type of the `data` handler's chunk.
 */
export interface SocketOptions<Data = unknown, DataBinaryType extends BinaryType = "buffer"> {
  /** The event handlers (required; at least `data` or `drain` must be given at runtime). */
  socket: SocketHandler<Data, DataBinaryType>;
  /** Initial `socket.data` (connect) or `listener.data` (listen). */
  data?: Data;
  /**
   * Keep the socket writable after the peer's FIN (`end` fires, `close` waits for your own
   * `end()`). Default `false`.
   */
  allowHalfOpen?: boolean;
}

/** Options of `listen()` on TCP. */
export interface TCPSocketListenOptions<Data = undefined, DataBinaryType extends BinaryType = "buffer">
  extends SocketOptions<Data, DataBinaryType> {
  /** Address to bind (`"127.0.0.1"`, `"::"`, `"localhost"`, …). Required: there is no default. */
  hostname: string;
  /** Port to bind; `0` picks an ephemeral port. */
  port: number;
  /** Serve TLS: `true`, or a {@link TLSOptions} object with at least `key` and `cert`. */
  tls?: TLSOptions | boolean;
  /** Do not share the port with other processes (no `SO_REUSEPORT`). Default `false`. */
  exclusive?: boolean;
  /** See {@link SocketOptions.allowHalfOpen}. Default `false`. */
  allowHalfOpen?: boolean;
}

/** Options of `connect()` over TCP. */
export interface TCPSocketConnectOptions<Data = undefined, DataBinaryType extends BinaryType = "buffer">
  extends SocketOptions<Data, DataBinaryType> {
  /** Host to connect to: an IP literal or a name resolved with the system resolver. */
  hostname: string;
  /** Port to connect to. */
  port: number;
  /**
   * Use TLS: `true` for default client settings (system roots, verification, SNI), or a
   * {@link TLSOptions} object. An empty object `{}` means plain TCP, like `false`.
   */
  tls?: TLSOptions | boolean;
  /** Default `false`. */
  exclusive?: boolean;
  /** Set `SO_REUSEPORT` on the socket. */
  reusePort?: boolean;
  /** Set `IPV6_V6ONLY` on the socket. */
  ipv6Only?: boolean;
}

/** Options of `connect()` / `listen()` on a unix-domain stream socket. */
export interface UnixSocketOptions<Data = undefined, DataBinaryType extends BinaryType = "buffer">
  extends SocketOptions<Data, DataBinaryType> {
  /** Filesystem path of the socket. Wins over `hostname`/`port` if both are given. */
  unix: string;
  /** Use TLS over the unix socket (see {@link TCPSocketConnectOptions.tls}). */
  tls?: TLSOptions | boolean;
}

/** Options of {@link Socket.upgradeTLS} (STARTTLS). */
export interface TLSUpgradeOptions<Data, DataBinaryType extends BinaryType = "buffer"> {
  /** `data` of the new TLS socket. */
  data?: Data;
  /** TLS settings; required and must not be `false`. */
  tls: TLSOptions | boolean;
  /** Handlers of the new TLS socket (its `open` runs synchronously inside `upgradeTLS()`). */
  socket: SocketHandler<Data, DataBinaryType>;
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/** Maps a `binaryType` name to the type of the chunk passed to the `data` handler. */
export interface BinaryTypeList {
  /** A fresh `ArrayBuffer` per chunk. */
  arraybuffer: ArrayBuffer;
  /** A Node `Buffer` (the default). */
  buffer: Buffer;
  /** A plain `Uint8Array` (not a `Buffer`). */
  uint8array: Uint8Array;
}

/** `"arraybuffer" | "buffer" | "uint8array"`: what the `data` handler receives. */
export type BinaryType = keyof BinaryTypeList;

/**
 * Event handlers of a socket. Inside every handler `this` is the socket (the first argument).
 * A handler that throws is reported to `error` (or as an uncaught exception without one).
 * Handlers may return a promise; it is not awaited.
 */
export interface SocketHandler<Data = unknown, DataBinaryType extends BinaryType = "buffer"> {
  /**
   * The connection is established (client) or accepted (server). With TLS it runs after the
   * handshake, unless a `handshake` handler is given (then at TCP connect).
   */
  open?(this: Socket<Data>, socket: Socket<Data>): void | Promise<void>;
  /**
   * The socket is gone, whoever closed it; runs exactly once. `error` is `undefined` for an
   * orderly close and an `ECONNRESET` error when the peer reset the connection.
   */
  close?(this: Socket<Data>, socket: Socket<Data>, error?: Error): void | Promise<void>;
  /** A handler threw, or an established TLS session failed. */
  error?(this: Socket<Data>, socket: Socket<Data>, error: Error): void | Promise<void>;
  /** Bytes arrived; the chunk's type follows `binaryType`. No framing. */
  data?(this: Socket<Data>, socket: Socket<Data>, data: BinaryTypeList[DataBinaryType]): void | Promise<void>;
  /** The socket can take more bytes again after a short `write()`. */
  drain?(this: Socket<Data>, socket: Socket<Data>): void | Promise<void>;
  /**
   * The TLS handshake finished. `success` is whether the connection may proceed;
   * `authorizationError` is `null` when the peer was verified, else the verification error.
   */
  handshake?(this: Socket<Data>, socket: Socket<Data>, success: boolean, authorizationError: Error | null): void;
  /** The peer sent FIN (also after your own `shutdown(true)`). `close` follows unless `allowHalfOpen`. */
  end?(this: Socket<Data>, socket: Socket<Data>): void | Promise<void>;
  /**
   * The client connection could not be established (the socket is dead). The `connect()` promise
   * rejects afterwards and is marked handled.
   */
  connectError?(this: Socket<Data>, socket: Socket<Data>, error: Error): void | Promise<void>;
  /** The one-shot timer armed by `socket.timeout(seconds)` expired. The socket is not closed. */
  timeout?(this: Socket<Data>, socket: Socket<Data>): void | Promise<void>;
  /** What the `data` handler receives. Default `"buffer"`. */
  binaryType?: DataBinaryType;
}

// ---------------------------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------------------------

/**
 * A listening socket returned by `listen()`. `using l = listen(…)` stops it with
 * `stop(true)` at the end of the scope.
 */
export interface SocketListener<Data = undefined> extends Disposable {
  /**
   * Stops accepting new connections. With `true`, also closes every accepted socket (their
   * `close` handlers run before this returns). Idempotent. A unix socket file is removed.
   */
  stop(closeActiveConnections?: boolean): void;
  /** Keep the process alive while listening (the default). */
  ref(): void;
  /** Let the process exit while listening (accepted sockets still count on their own). */
  unref(): void;
  /** Replaces the handlers of this listener and of every socket it already accepted. */
  reload<DataBinaryType extends BinaryType = "buffer">(
    options: Pick<SocketOptions<Data, DataBinaryType>, "socket">,
  ): void;
  /** The `data` option; new sockets start with this value as their `socket.data`. Writable. */
  data: Data;
  /** Bun extra: the listening file descriptor, `-1` once stopped. */
  readonly fd: number;
  /** Bun extra: fills `out` with `{ family, address, port }` of the bound address. */
  getsockname(out: Partial<SocketAddress>): void;
  /** Same as `stop(true)`. */
  [Symbol.dispose](): void;
}

/** A TCP listener. */
export interface TCPSocketListener<Data = unknown> extends SocketListener<Data> {
  /** The bound port (the real one when listening on port `0`); kept after `stop()`. */
  readonly port: number;
  /** The `hostname` option as given; kept after `stop()`. */
  readonly hostname: string;
}

/** A unix-domain listener. */
export interface UnixSocketListener<Data> extends SocketListener<Data> {
  /** The socket path. */
  readonly unix: string;
}

/** An IP socket address. */
export interface SocketAddress {
  /** IP address string, e.g. `"127.0.0.1"` or `"::1"`. */
  address: string;
  /** Port number. */
  port: number;
  /** Address family. */
  family: "IPv4" | "IPv6";
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/** PEM material: a string or bytes (Bun's `BunFile` does not exist on Node). */
export type TLSPEMInput = string | Buffer | ArrayBufferView | ArrayBuffer;

/**
 * TLS settings for `connect`, `listen` and `upgradeTLS`. Every field is accepted; fields marked
 * "accepted" have no effect in bunnet.
 */
export interface TLSOptions {
  /** PEM private key(s). Invalid PEM throws `ERR_OSSL_PEM_NO_START_LINE` synchronously. */
  key?: TLSPEMInput | TLSPEMInput[];
  /** PEM certificate chain(s). */
  cert?: TLSPEMInput | TLSPEMInput[];
  /** Trusted CA certificate(s) in PEM; replaces the default roots when given. */
  ca?: TLSPEMInput | TLSPEMInput[];
  /** PEM certificate revocation list(s). */
  crl?: TLSPEMInput | TLSPEMInput[];
  /** Passphrase of an encrypted `key`. */
  passphrase?: string;
  /** Path to a DH parameters file (accepted). */
  dhParamsFile?: string;
  /** SNI and certificate hostname check name. Defaults to `hostname` when it is a DNS name. */
  serverName?: string;
  /** Alias of `serverName` (the `node:tls` spelling); `serverName` wins if both are set. */
  servername?: string;
  /**
   * Reject peers whose certificate does not verify. Default `true` (clients honour
   * `NODE_TLS_REJECT_UNAUTHORIZED`).
   */
  rejectUnauthorized?: boolean;
  /** Server: ask the client for a certificate. Default `false`. */
  requestCert?: boolean;
  /** ALPN protocols in wire format (length-prefixed list, e.g. `"\x02h2\x08http/1.1"`); not an array. */
  ALPNProtocols?: string | ArrayBufferView | ArrayBuffer;
  /** `SSL_OP_*` bitmask; the `SSL_OP_NO_TLSv1_2` / `SSL_OP_NO_TLSv1_3` bits are honoured. */
  secureOptions?: number;
  /** OpenSSL-style cipher list; suites the TLS library supports are used. */
  ciphers?: string;
  /** Accepted. */
  lowMemoryMode?: boolean;
  /** Accepted (renegotiation is unsupported). */
  clientRenegotiationLimit?: number;
  /** Accepted (renegotiation is unsupported). */
  clientRenegotiationWindow?: number;
}

// ---------------------------------------------------------------------------------------------
// Socket
// ---------------------------------------------------------------------------------------------

/**
 * A TCP or unix-domain connection (plain or TLS), returned by `connect()` or accepted by a
 * listener. Writes are unbuffered. `using s = await connect(…)` calls `end()` at scope exit.
 */
export interface Socket<Data = undefined> extends Disposable {
  /**
   * Sends `data` now, without buffering (strings as UTF-8), optionally only the byte slice
   * `[byteOffset, byteOffset + byteLength)` (also for strings). Returns the number of bytes the
   * kernel took, which may be less than asked: then `drain` fires once more can be written, and
   * you must resend the rest yourself. Returns `-1` once the socket is closed or shut down.
   */
  write(data?: string | ArrayBufferView | ArrayBuffer | SharedArrayBuffer, byteOffset?: number, byteLength?: number): number;
  /**
   * Writes `data` (if given), then closes the connection fully, even with `allowHalfOpen`. On
   * plain sockets the socket's own `close` handler runs synchronously, before this returns. The
   * whole chunk is delivered. Returns the bytes taken (`0` without data), `-1` if already closed.
   */
  end(data?: string | ArrayBufferView | ArrayBuffer | SharedArrayBuffer, byteOffset?: number, byteLength?: number): number;
  /**
   * `shutdown()` half-closes the write side (the peer sees `end`; later writes return `-1`;
   * `readyState` stays `1`). `shutdown(true)` shuts the read side (this socket's own `end`
   * handler runs next).
   */
  shutdown(halfClose?: boolean): void;
  /** Abortive close: the peer gets a reset. The `close` handler runs before this returns. */
  terminate(): void;
  /** Graceful close, like `end()` without data; the `close` handler runs before this returns. */
  close(): void;
  /** No-op: writes are never buffered, so there is nothing to flush. */
  flush(): void;
  /**
   * Arms a one-shot timer: the `timeout` handler runs once after `seconds` (not reset by I/O;
   * the socket is not closed). Calling again re-arms; `0` disarms.
   */
  timeout(seconds: number): void;
  /** Keep the process alive while this socket is open (the default). */
  ref(): void;
  /** Let the process exit even though this socket is open. */
  unref(): void;
  /** Stops delivering `data` until `resume()`; unread bytes wait in the kernel. */
  pause(): void;
  /** Resumes `data` delivery, including bytes that arrived while paused. */
  resume(): void;
  /** Replaces this socket's handlers; the next event uses them. No-op on a closed socket. */
  reload<DataBinaryType extends BinaryType = "buffer">(
    options: Pick<SocketOptions<Data, DataBinaryType>, "socket">,
  ): void;
  /** Turns TCP_NODELAY on (default) or off. `true` on a live socket, `false` on a closed one. */
  setNoDelay(noDelay?: boolean): boolean;
  /**
   * Turns SO_KEEPALIVE on or off (default off), first probe after `initialDelay` ms.
   * `true` on a live socket, `false` on a closed one.
   */
  setKeepAlive(enable?: boolean, initialDelay?: number): boolean;

  /** `1` while open, `-1` once closed (also right after `end()`/`close()`/`terminate()`). */
  readonly readyState: -2 | -1 | 0 | 1 | 2;
  /** Bytes the kernel accepted so far (the sum of `write`/`end` return values). */
  readonly bytesWritten: number;
  /** Peer IP address. `undefined` on unix sockets and once closed. */
  readonly remoteAddress: string;
  /** Peer port. `undefined` on unix sockets and once closed. */
  readonly remotePort: number;
  /** Peer address family. `undefined` on unix sockets. */
  readonly remoteFamily: "IPv4" | "IPv6";
  /** Local IP address. `undefined` on unix sockets and once closed. */
  readonly localAddress: string;
  /** Local port (on a server socket, the listener's port). `undefined` on unix sockets and once closed. */
  readonly localPort: number;
  /** Local address family. `undefined` on unix sockets. */
  readonly localFamily: "IPv4" | "IPv6";
  /** The listener that accepted this socket; `undefined` for clients and once closed. */
  readonly listener?: SocketListener<unknown>;
  /** Whether the TLS peer's certificate verified. Always `false` on plain sockets. */
  readonly authorized: boolean;
  /**
   * The negotiated ALPN protocol: `null` before the TLS handshake, `false` if none was
   * selected (and always on plain sockets).
   */
  readonly alpnProtocol: string | false | null;
  /** Bun extra: the file descriptor, `-1` once closed. */
  readonly fd: number;
  /** Per-socket user data: `options.data` (client) or the listener's `data` (server). Writable. */
  data: Data;

  /** The peer's certificate. `null` on plain sockets; `undefined` on a server without a client cert. */
  getPeerCertificate(): PeerCertificate;
  /** This side's own certificate. `undefined` on plain sockets and clients without one. */
  getCertificate(): PeerCertificate | object | null;
  /** `{ name, standardName, version }` of the negotiated suite. `undefined` on plain sockets. */
  getCipher(): CipherNameAndProtocol;
  /** `"TLSv1.3"`, `"TLSv1.2"`, …; `null` on plain sockets. */
  getTLSVersion(): string;
  /** Ephemeral key exchange info (client); `null` on servers and plain sockets. */
  getEphemeralKeyInfo(): EphemeralKeyInfo | object | null;
  /** Signature algorithms shared with the peer. `undefined` on plain sockets. */
  getSharedSigalgs(): string[];
  /** The last TLS `Finished` message sent (TLS 1.2 only), else `undefined`. */
  getTLSFinishedMessage(): Buffer | undefined;
  /** The last TLS `Finished` message received (TLS 1.2 only), else `undefined`. */
  getTLSPeerFinishedMessage(): Buffer | undefined;
  /** Client: the session ticket once received; servers and plain sockets: `undefined`. */
  getTLSTicket(): Buffer | undefined;
  /**
   * The TLS session for resumption via `setSession()` (Bun types this as `void`; the runtime
   * returns a `Buffer`). `undefined` before the handshake and on plain sockets.
   */
  getSession(): Buffer | undefined;
  /**
   * Offers a saved session for resumption. Only effective in `open` before any write, on a client
   * with a `handshake` handler; otherwise ignored. Ignored on plain sockets.
   */
  setSession(session: string | Buffer | ArrayBufferView | ArrayBuffer): void;
  /** Whether the session was resumed. `false` on plain sockets. */
  isSessionReused(): boolean;
  /**
   * RFC 5705 keying material of `length` bytes. Throws before the handshake; `undefined` on
   * plain sockets.
   */
  exportKeyingMaterial(length: number, label: string, context?: string | Buffer | ArrayBufferView): Buffer;
  /** Why the peer was not authorized, or `null`. */
  getAuthorizationError(): Error | null;
  /** Sets the maximum TLS fragment size (512…16384). `false` if out of range or on plain sockets. */
  setMaxSendFragment(size: number): boolean;
  /** Disables TLS renegotiation (no-op: it is never supported). */
  disableRenegotiation(): void;
  /** Throws on a TLS socket (renegotiation is unsupported); no-op on plain sockets. */
  renegotiate(): void;
  /** Server socket in `open`, before the handshake: overrides `requestCert`/`rejectUnauthorized`. */
  setVerifyMode(requestCert: boolean, rejectUnauthorized: boolean): void;
  /** Client in `open`, before the handshake: sets the SNI / verification name. Throws on server sockets. */
  setServername(name: string): void;
  /** Server: the client's SNI name (or IP); client: the name used. `undefined` on plain sockets. */
  getServername(): string;
  /**
   * STARTTLS: upgrades this connection to TLS and returns two new sockets, `[raw, tls]`. This
   * socket is detached (`readyState -1`) but its handlers keep receiving the ciphertext;
   * `tls` carries plaintext, uses `options.socket`, and its `open` runs before this returns.
   */
  upgradeTLS<Data, DataBinaryType extends BinaryType = "buffer">(
    options: TLSUpgradeOptions<Data, DataBinaryType>,
  ): [raw: Socket<Data>, tls: Socket<Data>];
  /** Same as `end()`: closes the socket; its `close` handler runs before this returns. */
  [Symbol.dispose](): void;
}

/** A TCP socket (Bun's name); same runtime object as {@link Socket}. */
export interface TCPSocket<Data = undefined> extends Socket<Data> {}
/** A TLS socket (Bun's name); same runtime object as {@link Socket}. */
export interface TLSSocket<Data = undefined> extends Socket<Data> {}

// ---------------------------------------------------------------------------------------------
// Runtime classes
// ---------------------------------------------------------------------------------------------

/**
 * The native socket class, for `instanceof` checks and the prototype. It cannot be constructed
 * from JavaScript: sockets come from `connect()` and listeners.
 */
export const Socket: {
  readonly prototype: Socket<any>;
  [Symbol.hasInstance](value: unknown): value is Socket<any>;
};

/**
 * The native listener class, for `instanceof` checks and the prototype. It cannot be
 * constructed from JavaScript: listeners come from `listen()`.
 */
export const SocketListener: {
  readonly prototype: SocketListener<any>;
  [Symbol.hasInstance](value: unknown): value is SocketListener<any>;
};
