/**
 * The test authorization server's state file: everything a restarted server needs to honour what
 * it issued before (the signing key, cookie keys, the confidential client's secret, the port it
 * listened on, and every stored artifact: grants, sessions, codes, access and refresh tokens).
 *
 * Written synchronously, whole, to a temporary file that is then renamed over the state file, so a
 * kill -9 at any instant leaves either the previous state or the new one, never a torn file.
 * (No fsync: the file survives the death of the process, not of the machine.)
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

import type { PersistedEntry } from './map-adapter.js';

export interface StateSecrets {
  /** the ES256 private JWK (with kid, alg, use) */
  signingKey: Record<string, unknown>;
  cookieKeys: string[];
  confidentialClientSecret: string;
}

export interface PersistedState {
  version: 1;
  /** the port the server listened on (a restart defaults to it, so the issuer stays the same) */
  port: number;
  secrets: StateSecrets;
  entries: PersistedEntry[];
}

/** The state in `file`, or undefined when there is no such file. A malformed file throws. */
export function readStateFile(file: string): PersistedState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const state = JSON.parse(text) as Partial<PersistedState>;
  if (
    state.version !== 1 ||
    typeof state.port !== 'number' ||
    !state.secrets ||
    typeof state.secrets.confidentialClientSecret !== 'string' ||
    !Array.isArray(state.secrets.cookieKeys) ||
    typeof state.secrets.signingKey !== 'object' ||
    !Array.isArray(state.entries)
  ) {
    throw new Error(`${file} is not a test authorization server state file`);
  }
  return state as PersistedState;
}

let tmpCounter = 0;

/** Write `state` to `file` atomically (temp file + rename), synchronously. */
export function writeStateFileSync(file: string, state: PersistedState): void {
  const tmp = `${file}.${process.pid}.${tmpCounter++}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, file);
}
