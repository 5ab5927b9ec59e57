import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deepFreeze, encodeFrame, encodeOkFrame, FrameDecoder, FrozenJson, HEADER_BYTES, type DecodedFrame } from './codec.js';
import { ErrorCode, ProxyError } from './errors.js';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from './limits.js';

function frame(body: string | Buffer, declared?: number): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(declared ?? bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

function values(frames: DecodedFrame[]): unknown[] {
  return frames.map((f) => {
    if (!f.ok) throw f.error;
    return f.value;
  });
}

describe('encodeFrame', () => {
  it('writes a 4-byte big-endian length then UTF-8 JSON', () => {
    const bytes = encodeFrame({ a: 'é' });
    const body = Buffer.from('{"a":"é"}', 'utf8');
    expect(bytes.readUInt32BE(0)).toBe(body.length);
    expect(bytes.subarray(HEADER_BYTES).equals(body)).toBe(true);
  });

  it('refuses a body over the limit with RESPONSE_TOO_LARGE', () => {
    expect(() => encodeFrame({ pad: 'x'.repeat(100) }, 50)).toThrow(
      expect.objectContaining({ code: ErrorCode.RESPONSE_TOO_LARGE }),
    );
  });
});

describe('encodeOkFrame', () => {
  it('writes the same bytes as encodeFrame of {v, id, ok: true, data}, frozen or not', () => {
    const json = new FrozenJson();
    fc.assert(
      fc.property(fc.string(), fc.option(fc.jsonValue(), { nil: undefined }), fc.boolean(), (id, data, freeze) => {
        const value = freeze ? deepFreeze(structuredClone(data)) : data;
        const expected = encodeFrame({ v: PROTOCOL_VERSION, id, ok: true, data: value });
        expect(encodeOkFrame(id, value, MAX_FRAME_BYTES, json).equals(expected)).toBe(true);
        expect(encodeOkFrame(id, value).equals(expected)).toBe(true);
      }),
    );
  });

  it('refuses an answer over the limit with RESPONSE_TOO_LARGE', () => {
    expect(() => encodeOkFrame('1', { blob: 'x'.repeat(100) }, 64)).toThrow(expect.objectContaining({ code: ErrorCode.RESPONSE_TOO_LARGE }));
  });
});

describe('FrozenJson', () => {
  it('serializes a frozen value once and a mutable value every time', () => {
    const json = new FrozenJson();
    const frozen = deepFreeze({ access_token: 'a', nested: { scope: 'x' } });
    const spy = { calls: 0 };
    const original = JSON.stringify;
    JSON.stringify = ((...args: Parameters<typeof JSON.stringify>) => {
      spy.calls += 1;
      return original(...args);
    }) as typeof JSON.stringify;
    try {
      expect(json.stringify(frozen)).toBe(original(frozen));
      expect(json.stringify(frozen)).toBe(original(frozen));
      expect(spy.calls).toBe(1);
      const mutable: Record<string, unknown> = { access_token: 'a' };
      expect(json.stringify(mutable)).toBe('{"access_token":"a"}');
      mutable.access_token = 'b';
      expect(json.stringify(mutable)).toBe('{"access_token":"b"}');
    } finally {
      JSON.stringify = original;
    }
    expect(Object.isFrozen(frozen.nested)).toBe(true);
  });
});

describe('FrameDecoder', () => {
  const stream = Buffer.concat([
    encodeFrame({ v: 2, id: '1', op: 'ping', payload: {} }),
    encodeFrame({ text: 'héllo wörld ✓ 😀' }),
    encodeFrame([1, 2, 3]),
  ]);
  const expected = [{ v: 2, id: '1', op: 'ping', payload: {} }, { text: 'héllo wörld ✓ 😀' }, [1, 2, 3]];

  it('decodes frames split at every byte boundary', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder();
      const got = [...values(d.push(stream.subarray(0, cut))), ...values(d.push(stream.subarray(cut)))];
      expect(got).toEqual(expected);
      expect(d.hasPartialFrame).toBe(false);
    }
  });

  it('decodes a stream fed one byte at a time', () => {
    const boundaries = new Set<number>();
    for (let at = 0; at < stream.length; at += HEADER_BYTES + stream.readUInt32BE(at)) boundaries.add(at);
    const d = new FrameDecoder();
    const got: unknown[] = [];
    for (let i = 0; i < stream.length; i++) {
      got.push(...values(d.push(stream.subarray(i, i + 1))));
      expect(d.hasPartialFrame).toBe(!boundaries.has(i + 1) && i + 1 < stream.length);
    }
    expect(got).toEqual(expected);
  });

  it('decodes many frames in one chunk', () => {
    const many = Array.from({ length: 500 }, (_, i) => ({ i }));
    const d = new FrameDecoder();
    expect(values(d.push(Buffer.concat(many.map((m) => encodeFrame(m)))))).toEqual(many);
  });

  it('refuses a declared length over the limit as fatal INVALID_REQUEST, as soon as the header arrives', () => {
    const d = new FrameDecoder(100);
    const frames = d.push(frame('', 101));
    expect(frames).toHaveLength(1);
    const f = frames[0]!;
    expect(f.ok).toBe(false);
    if (f.ok) return;
    expect(f.fatal).toBe(true);
    expect(f.error.code).toBe(ErrorCode.INVALID_REQUEST);
    // Nothing more is decoded after a fatal frame.
    expect(d.push(encodeFrame({ after: true }))).toEqual([]);
  });

  it('uses 4 MiB as the default limit: 4 MiB is accepted, 4 MiB + 1 is fatal', () => {
    const body = Buffer.alloc(MAX_FRAME_BYTES, 0x20);
    body[0] = 0x31; // "1" followed by spaces: valid JSON
    const ok = new FrameDecoder().push(frame(body));
    expect(ok).toEqual([{ ok: true, value: 1 }]);
    const bad = new FrameDecoder().push(frame('', MAX_FRAME_BYTES + 1));
    expect(bad[0]).toMatchObject({ ok: false, fatal: true });
  });

  it('returns frames decoded before a fatal one in the same chunk', () => {
    const d = new FrameDecoder(100);
    const frames = d.push(Buffer.concat([encodeFrame({ a: 1 }), frame('', 0xffffffff)]));
    expect(frames.map((f) => f.ok)).toEqual([true, false]);
  });

  it('answers bad UTF-8 with a non-fatal INVALID_REQUEST and keeps decoding', () => {
    const d = new FrameDecoder();
    const frames = d.push(Buffer.concat([frame(Buffer.from([0x22, 0xff, 0xfe, 0x22])), encodeFrame({ next: 1 })]));
    expect(frames[0]).toMatchObject({ ok: false, fatal: false });
    expect(!frames[0]!.ok && frames[0]!.error.message).toMatch(/UTF-8/);
    expect(frames[1]).toEqual({ ok: true, value: { next: 1 } });
  });

  it('answers bad JSON with a non-fatal INVALID_REQUEST and keeps decoding', () => {
    const d = new FrameDecoder();
    const frames = d.push(Buffer.concat([frame('{"v":2,'), encodeFrame({ next: 1 })]));
    expect(frames[0]).toMatchObject({ ok: false, fatal: false, error: expect.objectContaining({ code: ErrorCode.INVALID_REQUEST }) });
    expect(!frames[0]!.ok && frames[0]!.error.message).toMatch(/JSON/);
    expect(frames[1]).toEqual({ ok: true, value: { next: 1 } });
  });

  it('treats a zero-length frame as bad JSON, not as the end of the stream', () => {
    const d = new FrameDecoder();
    const frames = d.push(Buffer.concat([frame(''), encodeFrame('x')]));
    expect(frames[0]).toMatchObject({ ok: false, fatal: false });
    expect(frames[1]).toEqual({ ok: true, value: 'x' });
    expect(d.hasPartialFrame).toBe(false);
  });

  it('passes non-object JSON through (the connection answers it, not the codec)', () => {
    const d = new FrameDecoder();
    expect(values(d.push(Buffer.concat([frame('null'), frame('42'), frame('"s"'), frame('[]')])))).toEqual([null, 42, 's', []]);
  });

  it('reports a partial frame while one is buffered', () => {
    const d = new FrameDecoder();
    expect(d.hasPartialFrame).toBe(false);
    d.push(Buffer.from([0, 0]));
    expect(d.hasPartialFrame).toBe(true);
    d.push(Buffer.from([0, 2, 0x31]));
    expect(d.hasPartialFrame).toBe(true);
    expect(values(d.push(Buffer.from([0x32])))).toEqual([12]);
    expect(d.hasPartialFrame).toBe(false);
  });

  it('costs linear time when a large frame trickles in small pieces', () => {
    const big = encodeFrame({ pad: 'a'.repeat(2 * 1024 * 1024) });
    const d = new FrameDecoder();
    const started = performance.now();
    let count = 0;
    for (let i = 0; i < big.length; i += 64) count += d.push(big.subarray(i, i + 64)).length;
    expect(count).toBe(1);
    // Joining the whole buffer on every piece took seconds here; one join takes milliseconds.
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('never throws on arbitrary byte chunks, and every result is a frame or a ProxyError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), fc.integer({ min: 0, max: 64 }), (chunks, max) => {
        const d = new FrameDecoder(max);
        for (const c of chunks) {
          for (const f of d.push(Buffer.from(c))) {
            if (!f.ok) {
              expect(f.error).toBeInstanceOf(ProxyError);
              expect(f.error.code).toBe(ErrorCode.INVALID_REQUEST);
            }
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('decodes arbitrary splits of a valid frame stream to the same values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (docs, cutSeeds) => {
          // Compare against what JSON round-trips to (-0 becomes 0).
          const expectedDocs = docs.map((v) => JSON.parse(JSON.stringify(v)) as unknown);
          const bytes = Buffer.concat(docs.map((v) => encodeFrame(v)));
          const cuts = [...new Set(cutSeeds.map((s) => s % (bytes.length + 1)))].sort((a, b) => a - b);
          const d = new FrameDecoder();
          const got: unknown[] = [];
          let from = 0;
          for (const cut of [...cuts, bytes.length]) {
            got.push(...values(d.push(bytes.subarray(from, cut))));
            from = cut;
          }
          expect(got).toEqual(expectedDocs);
          expect(d.hasPartialFrame).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('FrameDecoder limit changes', () => {
  it('applies a raised limit from the next frame on, also within one chunk', () => {
    const d = new FrameDecoder(100, ' before the handshake');
    const big = { pad: 'b'.repeat(500) };
    d.write(Buffer.concat([encodeFrame({ op: 'handshake' }), encodeFrame(big)]));
    expect(d.next()).toEqual({ ok: true, value: { op: 'handshake' } });
    d.setMaxFrameBytes(1000);
    expect(d.next()).toEqual({ ok: true, value: big });
    expect(d.next()).toBeUndefined();
  });

  it('refuses a frame over the current limit at its header, naming the limit and the hint', () => {
    const d = new FrameDecoder(100, ' before the handshake');
    d.write(frame('', 4 * 1024 * 1024));
    const f = d.next();
    expect(f).toMatchObject({ ok: false, fatal: true });
    expect(f && !f.ok && f.error.message).toMatch(/4194304 exceeds the 100-byte limit before the handshake/);
    expect(d.next()).toBeUndefined();
  });
});
