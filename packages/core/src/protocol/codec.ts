import { isAscii, isUtf8 } from 'node:buffer';
import { ErrorCode, ProxyError } from './errors.js';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from './limits.js';

/** A JSON object (every frame, and every payload, must be one). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Bytes of the length prefix: unsigned 32-bit big-endian. */
export const HEADER_BYTES = 4;

/**
 * Encode one frame: 4-byte big-endian length, then UTF-8 JSON.
 * Throws RESPONSE_TOO_LARGE when the body would exceed `maxFrameBytes`.
 */
export function encodeFrame(value: unknown, maxFrameBytes: number = MAX_FRAME_BYTES): Buffer {
  return encodeJsonText(JSON.stringify(value), maxFrameBytes);
}

/**
 * JSON of deeply frozen values, computed once per value. A cached token's view is one frozen
 * object served to every caller until the token changes, so its JSON is built once, not per
 * request. Values that are not frozen are stringified each time.
 */
export class FrozenJson {
  readonly #cache = new WeakMap<object, string>();

  stringify(value: unknown): string | undefined {
    if (typeof value !== 'object' || value === null || !Object.isFrozen(value)) return JSON.stringify(value);
    let json = this.#cache.get(value);
    if (json === undefined) {
      json = JSON.stringify(value);
      this.#cache.set(value, json);
    }
    return json;
  }
}

/** A success answer `{v, id, ok: true, data}`, the same bytes as encodeFrame of that object. */
export function encodeOkFrame(id: string, data: unknown, maxFrameBytes: number = MAX_FRAME_BYTES, json?: FrozenJson): Buffer {
  const dataJson = json ? json.stringify(data) : JSON.stringify(data);
  const head = `{"v":${PROTOCOL_VERSION},"id":${JSON.stringify(id)},"ok":true`;
  return encodeJsonText(dataJson === undefined ? `${head}}` : `${head},"data":${dataJson}}`, maxFrameBytes);
}

/** Deep-freeze a JSON value in place and return it (for FrozenJson). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function encodeJsonText(json: string, maxFrameBytes: number): Buffer {
  const bodyLength = Buffer.byteLength(json, 'utf8');
  if (bodyLength > maxFrameBytes) {
    throw new ProxyError(
      ErrorCode.RESPONSE_TOO_LARGE,
      `frame of ${bodyLength} bytes exceeds the ${maxFrameBytes}-byte limit`,
    );
  }
  const frame = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  frame.writeUInt32BE(bodyLength, 0);
  frame.write(json, HEADER_BYTES, 'utf8');
  return frame;
}

/** One decoded frame, or why it could not be decoded. */
export type DecodedFrame =
  | { ok: true; value: unknown }
  | {
      ok: false;
      error: ProxyError;
      /** The stream can no longer be framed; the connection must close after answering. */
      fatal: boolean;
    };

function parseBody(body: Buffer): DecodedFrame {
  // Frames are almost always ASCII: read as one-byte text, no decoding; otherwise strict UTF-8.
  let text: string;
  if (isAscii(body)) text = body.toString('latin1');
  else if (isUtf8(body)) text = body.toString('utf8');
  else {
    return {
      ok: false,
      fatal: false,
      error: new ProxyError(ErrorCode.INVALID_REQUEST, 'frame body is not valid UTF-8'),
    };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return {
      ok: false,
      fatal: false,
      error: new ProxyError(
        ErrorCode.INVALID_REQUEST,
        'frame body is not valid JSON — each frame is a 4-byte big-endian length then one JSON object',
      ),
    };
  }
}

/**
 * Incremental decoder for a byte stream of frames. Feed it chunks with `write()` and take the
 * frames they complete with `next()`, one at a time, so the limit can change between two frames
 * of one chunk (a connection raises it once its handshake succeeds). `push()` does both at once.
 * After a fatal result it decodes nothing more.
 *
 * Chunks are kept in a list and joined only once the frame they belong to is complete, so a peer
 * that trickles a large frame in tiny pieces costs linear time, not a copy of the whole buffer
 * per piece.
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  #limitHint = '';
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Bytes needed before anything new can be decoded: a header, or the current frame. */
  #needed = HEADER_BYTES;
  /** The single buffered chunk is a view into a larger buffer that was partly consumed. */
  #sliced = false;
  #failed = false;

  /** `limitHint` ends the error message of a frame over the limit (say why the limit is what it is). */
  constructor(maxFrameBytes: number = MAX_FRAME_BYTES, limitHint = '') {
    this.#maxFrameBytes = maxFrameBytes;
    this.#limitHint = limitHint;
  }

  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** Change the largest frame accepted (and the hint), from the next frame on. */
  setMaxFrameBytes(maxFrameBytes: number, hint = ''): void {
    this.#maxFrameBytes = maxFrameBytes;
    this.#limitHint = hint;
  }

  /** True while bytes of an unfinished frame are buffered. */
  get hasPartialFrame(): boolean {
    return this.#buffered > 0;
  }

  /** Buffer a chunk; take the frames it completes with next(). */
  write(chunk: Buffer): void {
    if (this.#failed || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next complete frame, or undefined until more bytes arrive. */
  next(): DecodedFrame | undefined {
    if (this.#failed || this.#buffered < this.#needed) return this.#idle();
    let data = this.#chunks[0]!;
    if (this.#chunks.length > 1) {
      data = Buffer.concat(this.#chunks, this.#buffered);
      this.#chunks = [data];
      this.#sliced = false;
    }
    const length = data.readUInt32BE(0);
    if (length > this.#maxFrameBytes) {
      this.#failed = true;
      this.#chunks = [];
      this.#buffered = 0;
      this.#sliced = false;
      return {
        ok: false,
        fatal: true,
        error: new ProxyError(
          ErrorCode.INVALID_REQUEST,
          `frame length ${length} exceeds the ${this.#maxFrameBytes}-byte limit${this.#limitHint}; closing the connection`,
        ),
      };
    }
    const end = HEADER_BYTES + length;
    if (this.#buffered < end) {
      this.#needed = end;
      return this.#idle();
    }
    const frame = parseBody(data.subarray(HEADER_BYTES, end));
    this.#buffered -= end;
    this.#needed = HEADER_BYTES;
    if (this.#buffered === 0) {
      this.#chunks = [];
      this.#sliced = false;
    } else {
      this.#chunks[0] = data.subarray(end);
      this.#sliced = true;
    }
    return frame;
  }

  /** Nothing to decode now: copy a partly consumed remainder so it does not pin a large chunk. */
  #idle(): undefined {
    if (this.#sliced) {
      this.#chunks[0] = Buffer.from(this.#chunks[0]!);
      this.#sliced = false;
    }
    return undefined;
  }

  /** write() then every frame it completes (up to and including a fatal one). */
  push(chunk: Buffer): DecodedFrame[] {
    this.write(chunk);
    const frames: DecodedFrame[] = [];
    for (let frame = this.next(); frame !== undefined; frame = this.next()) frames.push(frame);
    return frames;
  }
}
