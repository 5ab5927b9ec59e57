// What every bench script starts with: its flags (`--json`, or `npm run bench --json`, which npm
// passes as npm_config_json; `--seconds N` per round), the built CLI, a temporary directory with
// the proxy's paths in it, and the children it will start.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Children } from './children.mjs';

export const ROUNDS = 5;

export function benchContext(prefix, extraEnv = {}) {
  const json = process.argv.includes('--json') || process.env.npm_config_json === 'true';
  const secondsArg = process.argv.indexOf('--seconds');
  const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;
  const scripts = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const env = {
    ...process.env,
    CREDPROXY_SOCKET: path.join(dir, 'p.sock'),
    CREDPROXY_DATA_DIR: path.join(dir, 'data'),
    CREDPROXY_CONFIG: path.join(dir, 'config.json'),
    ...(typeof extraEnv === 'function' ? extraEnv(dir) : extraEnv),
  };
  delete env.CREDPROXY_DEBUG;
  const children = new Children(env);
  return {
    json,
    seconds,
    here: scripts,
    bin: path.join(scripts, '..', 'packages', 'cli', 'dist', 'bin.js'),
    // The `credproxy` command as npm installs it (package.json's bin), for what a user's script pays.
    command: path.join(scripts, '..', 'packages', 'cli', JSON.parse(readFileSync(path.join(scripts, '..', 'packages', 'cli', 'package.json'), 'utf8')).bin.credproxy),
    say: (s) => {
      if (!json) process.stderr.write(s + '\n');
    },
    dir,
    env,
    children,
    start: (args, options) => children.start(args, options),
  };
}
