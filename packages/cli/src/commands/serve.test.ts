import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { YOUNG_GENERATION_FLAG } from './serve.js';

/** Young generation size after a burst of short-lived garbage, in a fresh node process. */
function newSpaceAfterChurn(flag: string): number {
  const script = `
    import v8 from 'node:v8';
    if (process.env.FLAG) v8.setFlagsFromString(process.env.FLAG);
    const ring = new Array(20000);
    for (let i = 0; i < 3_000_000; i++) ring[i % ring.length] = { i, s: 'x' + i, a: [i, i + 1] };
    process.stdout.write(String(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));
  `;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, FLAG: flag } }));
}

describe('serve keeps the young generation small', () => {
  // Set at run time, after V8 has started: this fails if a Node upgrade stops honouring it.
  it('V8 honours the flag set at run time: the young generation stays at its initial size', () => {
    const grown = newSpaceAfterChurn('');
    const held = newSpaceAfterChurn(YOUNG_GENERATION_FLAG);
    expect(grown).toBeGreaterThanOrEqual(16 * 1024 * 1024);
    expect(held).toBeLessThanOrEqual(4 * 1024 * 1024);
  });
});
