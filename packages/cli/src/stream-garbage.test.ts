import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { collectRelayedGarbage } from './stream-garbage.js';

const built = new URL('../dist/stream-garbage.js', import.meta.url).href;

describe('collectRelayedGarbage', () => {
  it('collects when everyBytes have been relayed since the last collection, however the bytes are split', () => {
    let collections = 0;
    const relayed = collectRelayedGarbage({ everyBytes: 100, collect: () => void collections++ });
    for (let i = 0; i < 3; i++) relayed(30);
    expect(collections).toBe(0);
    relayed(30); // 120
    expect(collections).toBe(1);
    for (let i = 0; i < 3; i++) relayed(30);
    expect(collections).toBe(1);
    relayed(1000); // one large chunk: one collection, not ten
    expect(collections).toBe(2);
    relayed(99);
    expect(collections).toBe(2);
    relayed(1);
    expect(collections).toBe(3);
  });

  // V8 honours --expose-gc set at run time for new contexts; this fails if a Node upgrade stops it.
  it("runs a real young-generation collection in this node (V8's trace shows it)", () => {
    const script = `
      const { collectRelayedGarbage } = await import(${JSON.stringify(built)});
      const relayed = collectRelayedGarbage({ everyBytes: 1024 });
      relayed(4096);
    `;
    const trace = execFileSync(process.execPath, ['--trace-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(trace).toMatch(/Scavenge[^\n]*testing/);
  });
});
