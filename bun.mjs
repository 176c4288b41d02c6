// Under Bun, `import { connect, listen } from "bunnet"` resolves here (the "bun" export
// condition): Bun's own implementation, so the same code runs natively on both runtimes.
export const connect = Bun.connect
export const listen = Bun.listen
export default { connect, listen }
