/**
 * Every path credproxy uses, computed when called from the environment it is given (SPEC §1).
 * Nothing here is cached at module level, so tests and the CLI can pass their own env.
 */
import envPaths from 'env-paths';
import path from 'node:path';
import { ErrorCode, ProxyError } from './protocol/errors.js';
import { defaultSocketPath } from './socket-path.js';

export { defaultSocketPath };

export interface PathInputs {
  env?: NodeJS.ProcessEnv;
  uid?: number;
  tmpdir?: string;
}

export interface CredproxyPaths {
  configFile: string;
  /** Holds every secret; 0700. The paths below inside it are all derived here, nowhere else. */
  dataDir: string;
  /** Token store: `<provider>/<bucket>.json` per account. */
  tokensDir: string;
  /** API keys: `<name>.key` each. */
  keysDir: string;
  /** The client registry (token hashes, never tokens). */
  clientsFile: string;
  /** The data key, wrapped (never the key that wraps it). */
  storeKeyFile: string;
  /** The key file made when no key source is configured: in the config dir, never the data dir. */
  autoKeyFile: string;
  socketPath: string;
  /** Directory that holds the socket and the pid/lock file. */
  runDir: string;
  pidFile: string;
  auditLog: string;
}

/** sun_path is 108 bytes on Linux (104 on macOS), including the terminating NUL. */
export const SOCKET_PATH_MAX_BYTES = process.platform === 'linux' ? 107 : 103;

export function resolvePaths(inputs: PathInputs & { socketPath?: string } = {}): CredproxyPaths {
  const env = inputs.env ?? process.env;
  const dirs = envPaths('credproxy', { suffix: '' });
  const configFile = env.CREDPROXY_CONFIG
    ? path.resolve(env.CREDPROXY_CONFIG)
    : path.join(dirs.config, 'config.json');
  const dataDir = env.CREDPROXY_DATA_DIR ? path.resolve(env.CREDPROXY_DATA_DIR) : dirs.data;
  const socketPath = inputs.socketPath ? path.resolve(inputs.socketPath) : defaultSocketPath(inputs);
  const runDir = path.dirname(socketPath);
  return {
    configFile,
    dataDir,
    tokensDir: path.join(dataDir, 'tokens'),
    keysDir: path.join(dataDir, 'keys'),
    clientsFile: path.join(dataDir, 'clients.json'),
    storeKeyFile: path.join(dataDir, 'store-key.json'),
    autoKeyFile: path.join(path.dirname(configFile), 'store.key'),
    socketPath,
    runDir,
    pidFile: socketPath + '.pid',
    auditLog: path.join(dataDir, 'audit.log'),
  };
}

/** Refuse a socket path the kernel would truncate, with the fix in the message. */
export function assertSocketPathFits(socketPath: string): void {
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > SOCKET_PATH_MAX_BYTES) {
    throw new ProxyError(
      ErrorCode.INVALID_REQUEST,
      `socket path is ${bytes} bytes, longer than this platform's limit of ${SOCKET_PATH_MAX_BYTES}: ${socketPath} — choose a shorter one with --socket or CREDPROXY_SOCKET`,
    );
  }
}
