/** `npm run demo` must work offline: its smoke mode logs in through every demo provider. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../scripts/demo.mjs', import.meta.url));

it('npm run demo serves a provider per flow, and each login yields a token the provider accepts', async () => {
  const child = spawn(process.execPath, [DEMO, '--smoke'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  expect(code, err).toBe(0);
  expect(JSON.parse(out)).toEqual({
    demo: 'ok (demo-user@example.test)',
    'demo-device': 'ok (demo-user@example.test)',
    'demo-paste': 'ok (demo-user@example.test)',
  });
});
