import { describe, expect, it } from 'vitest';
import { type LogFields, streamLogger } from './logger.js';

function line(fields: LogFields): string {
  let out = '';
  streamLogger({ write: (s: string) => (out += s) }, 'info', () => new Date(0)).log('warn', 'msg', fields);
  return out;
}

describe('streamLogger', () => {
  it('writes plain words bare and quotes the rest, every control character escaped: one line, whatever a value holds', () => {
    expect(line({ provider: 'github', n: 3 })).toBe('1970-01-01T00:00:00.000Z warn msg provider=github n=3\n');
    expect(line({ error: 'two words' })).toBe('1970-01-01T00:00:00.000Z warn msg error="two words"\n');
    const forged = line({ error: 'bad\n1970-01-01T00:00:00.000Z info forged', tty: 'x\u001b[2Jy', c1: 'a\u009bb', q: 'say"hi' });
    expect(forged.split('\n')).toHaveLength(2);
    expect(forged).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(forged).toContain('error="bad\\n1970-01-01T00:00:00.000Z info forged"');
    expect(forged).toContain('tty="x\\u001b[2Jy"');
    expect(forged).toContain('c1="a\\u009bb"');
    expect(forged).toContain('q="say\\"hi"');
  });
});
