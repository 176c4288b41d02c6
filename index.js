'use strict'
// bunnet's public entry (CommonJS). The native classes come from the generated loader
// (binding.js); this file only adds what Node-API cannot express: the arity of connect/listen,
// Symbol.dispose and Symbol.toStringTag on the prototypes.
const binding = require('./binding.js')

// `connect` here reads the options and handlers in JS and passes them on (src/connect.rs).
const { Socket, SocketListener, connect: fastConnect } = binding.classes()
const nativeListen = binding.listen

/**
 * Bun.connect for Node.js: resolves with an open `Socket`.
 * @param {object} options
 */
function connect(options) {
  return fastConnect(options)
}

/**
 * Bun.listen for Node.js: returns a `SocketListener`.
 * @param {object} options
 */
function listen(options) {
  return nativeListen(options)
}

Object.defineProperty(Socket.prototype, Symbol.toStringTag, { value: 'TCPSocket', configurable: true })
Object.defineProperty(SocketListener.prototype, Symbol.toStringTag, { value: 'Listener', configurable: true })
if (typeof Symbol.dispose === 'symbol') {
  Object.defineProperty(Socket.prototype, Symbol.dispose, {
    value: function dispose() {
      return this.end()
    },
    writable: true,
    configurable: true,
  })
  Object.defineProperty(SocketListener.prototype, Symbol.dispose, {
    value: function dispose() {
      this.stop(true)
    },
    writable: true,
    configurable: true,
  })
}

module.exports = { connect, listen, Socket, SocketListener }
