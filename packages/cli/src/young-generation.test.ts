import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { YOUNG_GENERATION_CAP_BYTES } from './young-generation.js';

const built = new URL('../dist/young-generation.js', import.meta.url).href;

/**
 * The young generation's size in a fresh node process after churning through garbage with many
 * survivors (as a burst of pending logins does), with or without the cap.
 */
function youngGenerationAfterChurn(capped: boolean): number {
  const script = `
    import v8 from 'node:v8';
    ${capped ? `const { capYoungGeneration } = await import(${JSON.stringify(built)}); capYoungGeneration();` : ''}
    // Small tasks, as a server's requests are: the GC observer runs between them.
    const ring = new Array(50_000);
    for (let round = 0; round < 3_000; round++) {
      for (let i = 0; i < 1_000; i++) ring[(round * 1_000 + i) % ring.length] = { i, s: 'x' + i, a: [i, round] };
      await new Promise((r) => setImmediate(r));
    }
    process.stdout.write(String(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));
  `;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('capYoungGeneration', () => {
  // V8 reads the flag at run time; this fails if a Node upgrade stops honouring it.
  it('stops the young generation at the cap, where V8 alone grows it further', () => {
    const uncapped = youngGenerationAfterChurn(false);
    const capped = youngGenerationAfterChurn(true);
    expect(uncapped).toBeGreaterThan(YOUNG_GENERATION_CAP_BYTES);
    expect(capped).toBeLessThanOrEqual(YOUNG_GENERATION_CAP_BYTES);
    expect(capped).toBeGreaterThan(0);
  });
});
