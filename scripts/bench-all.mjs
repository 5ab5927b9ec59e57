#!/usr/bin/env node
// npm run bench: the socket bench (scripts/bench.mjs) then the routes bench
// (scripts/bench-routes.mjs), each against floors measured in its own run. With --json (or
// `npm run bench --json`) one JSON document on stdout: the socket bench's report, its
// `routes` key the routes bench's, and `targets` both lists (routes' names prefixed).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const json = process.argv.includes('--json') || process.env.npm_config_json === 'true';
const args = process.argv.slice(2).filter((a) => a !== '--json');

/** Run one bench; resolves to its stdout (JSON mode) once it exits 0. */
function run(script) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, script), ...args, ...(json ? ['--json'] : [])], {
      stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'],
    });
    let out = '';
    child.stdout?.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', (code, signal) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited with ${code ?? signal}`))));
  });
}

try {
  const main = await run('bench.mjs');
  const routes = await run('bench-routes.mjs');
  if (json) {
    const report = JSON.parse(main);
    const r = JSON.parse(routes).routes;
    report.routes = r;
    report.targets = [...(report.targets ?? []), ...r.targets.map((t) => ({ ...t, name: `routes: ${t.name}` }))];
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  }
} catch (err) {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exitCode = 1;
}
