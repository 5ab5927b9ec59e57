/**
 * What an op handler is. Its own file so that handlers and the dispatch table both import it
 * and neither imports the other's module back (the table imports the handlers, nothing more).
 */
import type { Op, OpPayload, OpResult } from '../protocol/ops.js';
import type { RequestContext } from './context.js';

export type DispatchedOp = Exclude<Op, 'handshake' | 'cancel'>;

/**
 * A payload as validate() hands it on: an account's bucket is filled in (SPEC §3's `default`),
 * so run() uses it as an account key as it is.
 */
export type ValidPayload<O extends DispatchedOp> = WithBucket<OpPayload<O>>;

type WithBucket<P> = string extends keyof P ? P : P extends { provider: string; bucket?: string } ? ('bucket' extends keyof P ? Omit<P, 'bucket'> & { bucket: string } : P) : P;

export interface Handler<O extends DispatchedOp> {
  /** `owner`: the owner only. `client`: the owner and clients (scope is checked in run). */
  access: 'owner' | 'client';
  /** Check and normalise the payload as it enters; throws INVALID_REQUEST naming the field. */
  validate(payload: Record<string, unknown>): ValidPayload<O>;
  /** A value for an answer that needs no waiting (a cached token), else a promise. */
  run(payload: ValidPayload<O>, ctx: RequestContext): Promise<OpResult<O>> | OpResult<O>;
  /** May run long or go upstream: give it an AbortSignal and a deadline. */
  slow?: boolean;
}

export type HandlerTable = { [O in DispatchedOp]: Handler<O> };
