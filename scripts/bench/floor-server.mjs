// The floor: the least a Node process can do for get_token or get_api_key — read length-prefixed
// frames on a Unix socket, parse each (to learn its id and op), answer a canned token or key. No
// checks, no stores. A handshake gets a canned answer: HANDSHAKE_DATA (JSON), when given, is the
// proxy's own answer's data, so both send the same bytes on a fresh connection.
// usage: floor-server.mjs SOCKET [HANDSHAKE_DATA]
import net from 'node:net';
import fs from 'node:fs';

const socketPath = process.argv[2];
if (!socketPath) throw new Error('usage: floor-server.mjs SOCKET [HANDSHAKE_DATA]');
try { fs.unlinkSync(socketPath); } catch {}
const data = { access_token: 'floor-access-token', token_type: 'Bearer', expiry: 4102444800 };
// As long as the key the bench stores in the proxy, so both answers are the same size.
const keyData = { key: 'bench-api-key-0123456789abcdef0123456789abcdef' };

function frame(obj) {
  const body = Buffer.from(JSON.stringify(obj));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}
const handshakeAnswer = frame({ v: 2, ok: true, data: process.argv[3] ? JSON.parse(process.argv[3]) : { version: 2 } });

const server = net.createServer((sock) => {
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (buf.length - off - 4 < len) break;
      const msg = JSON.parse(buf.toString('utf8', off + 4, off + 4 + len));
      off += 4 + len;
      if (msg.op === 'handshake') sock.write(handshakeAnswer);
      else sock.write(frame({ v: 2, id: msg.id, ok: true, data: msg.op === 'get_api_key' ? keyData : data }));
    }
    buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
  });
  sock.on('error', () => {});
});
server.listen(socketPath, () => process.send?.('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
