/** The payload of a chunked body (tolerant: stops at the first malformed size line or the last chunk). */
export function dechunk(body: Buffer): Buffer;
