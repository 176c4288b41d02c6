'use strict'
// Under Bun, `require("bunnet")` resolves here (the "bun" export condition): Bun's own
// Bun.connect/Bun.listen.
module.exports = { connect: Bun.connect, listen: Bun.listen }
