// Reading raw HTTP/1.1 bytes in tests and their child processes (plain JavaScript, so a child
// run by node without a TypeScript loader can import it too).

/** The payload of a chunked body (tolerant: stops at the first malformed size line or the last chunk). */
export function dechunk(body) {
  const parts = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol === -1) break;
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
