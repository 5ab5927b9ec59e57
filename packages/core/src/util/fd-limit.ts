/**
 * The connection cap must fit under the process's open-files limit: with the common soft limit
 * of 1024 and a cap of 1024, descriptors ran out near 1000 connections, after which connections
 * (the owner's too) were closed without a word. The cap is lowered to fit, with a warning that
 * says how to raise the limit.
 */
import { readFileSync } from 'node:fs';

/** Descriptors kept for everything but connections: listeners, stores, audit log, locks, upstream HTTP. */
export const DESCRIPTORS_RESERVED = 64;
/** However low the limit, the owner can still connect. */
const MIN_CONNECTIONS = 16;

/** The soft RLIMIT_NOFILE of this process (Linux /proc), or undefined where it cannot be read. */
export function readOpenFilesLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  if (soft === undefined) return undefined;
  if (soft === 'unlimited') return Number.POSITIVE_INFINITY;
  const n = Number(soft);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The connection cap that fits `openFilesLimit` (unchanged when the limit is unknown). */
export function connectionCap(requested: number, openFilesLimit: number | undefined): number {
  if (openFilesLimit === undefined) return requested;
  return Math.min(requested, Math.max(MIN_CONNECTIONS, openFilesLimit - DESCRIPTORS_RESERVED));
}
