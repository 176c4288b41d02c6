// bunnet's ESM entry: the same objects as the CommonJS entry (one implementation, no copies).
import bunnet from './index.js'

export const { connect, listen, Socket, SocketListener } = bunnet
export default bunnet
