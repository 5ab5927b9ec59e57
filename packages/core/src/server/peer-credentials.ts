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

type GetSockOpt = (fd: number, level: number, name: number, out: Record<string, number>, len: number[]) => number;

/** Loaded once per process: koffi refuses to declare the struct type a second time. */
let loaded: GetSockOpt | undefined;

function loadGetSockOpt(): GetSockOpt {
  loaded ??= loadGetSockOptOnce();
  return loaded;
}

function loadGetSockOptOnce(): GetSockOpt {
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as {
    load(name: string): { func(signature: string): GetSockOpt };
    struct(name: string, fields: Record<string, string>): unknown;
  };
  const libc = koffi.load('libc.so.6');
  koffi.struct('credproxy_ucred', { pid: 'int32', uid: 'uint32', gid: 'uint32' });
  return libc.func('int getsockopt(int, int, int, _Out_ credproxy_ucred *, _Inout_ uint32 *)');
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
  return (socket) => {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return unavailable('socket has no file descriptor');
    const cred: Record<string, number> = {};
    const len = [12];
    try {
      if (call(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) return unavailable('getsockopt failed');
    } catch (err) {
      return unavailable(err instanceof Error ? err.message : String(err));
    }
    return { pid: cred.pid, uid: cred.uid, gid: cred.gid };
  };
}
