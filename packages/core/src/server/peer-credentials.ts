/**
 * The connecting process's pid/uid/gid, as the kernel recorded them at connect() (SO_PEERCRED).
 * Node does not expose them, so on Linux we call getsockopt through koffi (an optional
 * dependency). Elsewhere, or when koffi or the socket's fd is unavailable, we say so once in the
 * log and the socket's file modes remain the guard.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Logger } from '../util/logger.js';
import type { PeerInfo } from './context.js';

export type PeerCredentialReader = (socket: Socket) => PeerInfo;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/** `struct ucred`: pid, uid, gid, 32 bits each in host order — a Uint32Array(3) reads it as is. */
const UCRED_BYTES = 12;

/**
 * getsockopt with raw pointers: koffi passes a typed array's memory as it is, where a declared
 * struct would be converted to a new JS object on every call (3× the cost, on every connection).
 */
type GetSockOpt = (fd: number, level: number, name: number, out: Uint32Array, len: Uint32Array) => number;

/** Loaded once per process: one libc binding serves every reader. */
let loaded: GetSockOpt | undefined;

function loadGetSockOpt(): GetSockOpt {
  loaded ??= loadGetSockOptOnce();
  return loaded;
}

function loadGetSockOptOnce(): GetSockOpt {
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as {
    load(name: string): { func(signature: string): GetSockOpt };
  };
  const libc = koffi.load('libc.so.6');
  return libc.func('int getsockopt(int, int, int, void *, void *)');
}

/** A reader for this platform; never throws, returns `{}` where it cannot tell. */
export function createPeerCredentialReader(logger: Logger, platform: NodeJS.Platform = process.platform): PeerCredentialReader {
  let getsockopt: GetSockOpt | undefined;
  let warned = false;
  const unavailable = (why: string): PeerInfo => {
    if (!warned) {
      warned = true;
      logger.log('warn', `peer credentials unavailable (${why}); relying on socket file modes`);
    }
    return {};
  };
  if (platform !== 'linux') {
    return () => unavailable(`not implemented on ${platform}`);
  }
  try {
    getsockopt = loadGetSockOpt();
  } catch (err) {
    return () => unavailable(`koffi could not load libc: ${err instanceof Error ? err.message : String(err)}`);
  }
  const call = getsockopt;
  // One reader runs one call at a time (JavaScript is single-threaded): its buffers are reused.
  const cred = new Uint32Array(UCRED_BYTES / 4);
  const len = new Uint32Array(1);
  return (socket) => {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return unavailable('socket has no file descriptor');
    len[0] = UCRED_BYTES;
    try {
      if (call(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) return unavailable('getsockopt failed');
    } catch (err) {
      return unavailable(err instanceof Error ? err.message : String(err));
    }
    if (len[0] !== UCRED_BYTES) return unavailable('getsockopt returned a short struct ucred');
    // pid_t is signed; uid_t and gid_t are not.
    return { pid: cred[0]! | 0, uid: cred[1]!, gid: cred[2]! };
  };
}
