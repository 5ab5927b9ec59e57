/**
 * Runs the ops of one connection: validate → run → answer, requests in flight (cancel, the
 * deadline of slow ops, the abort when the connection closes) and the op's audit line.
 *
 * The hot path (a cached token) is answered synchronously: no InFlight, no AbortController and
 * no timer are made for a handler that returns a value rather than a promise.
 */
import type { Identity } from '../clients/policy.js';
import { encodeFrame, encodeOkFrame, type FrozenJson } from '../protocol/codec.js';
import { ErrorCode, ProxyError, toErrorFrame } from '../protocol/errors.js';
import { GET_TOKEN_DEADLINE_MS, MAX_IN_FLIGHT_PER_CONNECTION, PROTOCOL_VERSION } from '../protocol/limits.js';
import type { PeerInfo, ProxyServices, RequestContext } from './context.js';
import type { DispatchedOp, Handler } from './handler.js';

class InFlight {
  #controller: AbortController | undefined;
  cancelled = false;
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }
  abort(reason: ProxyError): void {
    this.#controller?.abort(reason);
  }
}

/**
 * What a handler sees. Its InFlight (and AbortController) is made only when the handler reads
 * `signal` or answers asynchronously: a cached token is answered without either.
 */
class Context implements RequestContext {
  #req: InFlight | undefined;
  constructor(
    readonly identity: Identity,
    readonly services: ProxyServices,
    readonly peer: PeerInfo,
    readonly listenerPath: string,
  ) {}

  get signal(): AbortSignal {
    return this.inFlight().signal;
  }

  inFlight(): InFlight {
    return (this.#req ??= new InFlight());
  }
}

type Scope = { provider?: string; bucket?: string };

/** What the runner needs of its connection. */
export interface OpRunnerDeps {
  services: ProxyServices;
  peer: PeerInfo;
  listenerPath: string;
  maxFrameBytes: number;
  /** Shared by a listener's connections, so a cached token is serialized once for all. */
  json: FrozenJson;
  /** Send a frame object (encoded and size-checked by the connection). */
  send(frame: object): void;
  /** Write encoded bytes; false when the connection can no longer be written. */
  write(bytes: Buffer): void;
  writable(): boolean;
  /** The op's audit line. */
  audit(op: string, outcome: string, scope: Scope | undefined, ms: number | undefined): void;
}

export class OpRunner {
  readonly #d: OpRunnerDeps;
  /** Made at the first op answered asynchronously: a one-shot caller's cached token never needs it. */
  #inFlight: Map<string, InFlight> | undefined;

  constructor(deps: OpRunnerDeps) {
    this.#d = deps;
  }

  get size(): number {
    return this.#inFlight?.size ?? 0;
  }

  /** Why a request with this id cannot start now (duplicate id, too many in flight), if so. */
  refusal(id: string): ProxyError | undefined {
    const inFlight = this.#inFlight;
    if (inFlight === undefined) return undefined;
    if (inFlight.has(id)) {
      return new ProxyError(ErrorCode.INVALID_REQUEST, `a request with id "${id.slice(0, 64)}" is already in flight — use a fresh id per request`);
    }
    if (inFlight.size >= MAX_IN_FLIGHT_PER_CONNECTION) {
      return new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `at most ${MAX_IN_FLIGHT_PER_CONNECTION} requests may be in flight on one connection — wait for answers or open another connection`);
    }
    return undefined;
  }

  /** `cancel {targetId}`: the target answers CANCELLED, the cancel answers whether it was found. */
  cancel(id: string, payload: Record<string, unknown>): void {
    const targetId = payload.targetId;
    if (typeof targetId !== 'string') {
      this.#d.send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, 'cancel needs payload.targetId: the id of a request in flight on this connection'), id));
      return;
    }
    const target = this.#inFlight?.get(targetId);
    if (target && !target.cancelled) {
      target.cancelled = true;
      this.#inFlight?.delete(targetId);
      const reason = new ProxyError(ErrorCode.CANCELLED, `request ${targetId.slice(0, 64)} was cancelled by the client`);
      target.abort(reason);
      this.#d.send(toErrorFrame(reason, targetId));
      this.#d.send({ v: PROTOCOL_VERSION, id, ok: true, data: { cancelled: true } });
    } else {
      this.#d.send({ v: PROTOCOL_VERSION, id, ok: true, data: { cancelled: false } });
    }
  }

  /** The connection closed: every request in flight is aborted and answers nothing. */
  abortAll(): void {
    if (this.#inFlight === undefined) return;
    const reason = new ProxyError(ErrorCode.CANCELLED, 'connection closed');
    for (const req of this.#inFlight.values()) {
      req.cancelled = true;
      req.abort(reason);
    }
    this.#inFlight.clear();
  }

  run(id: string, op: DispatchedOp, handler: Handler<DispatchedOp>, raw: Record<string, unknown>, identity: Identity): void {
    const started = performance.now();
    let validated: ReturnType<Handler<DispatchedOp>['validate']>;
    try {
      validated = handler.validate(raw);
    } catch (err) {
      this.#answerError(err, op, id, undefined, started);
      return;
    }
    const scope = validated as Scope;
    const ctx = new Context(identity, this.#d.services, this.#d.peer, this.#d.listenerPath);
    let result: unknown;
    try {
      result = handler.run(validated as never, ctx);
    } catch (err) {
      this.#answerError(err, op, id, scope, started);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#answerOk(id, op, result, scope, started);
      return;
    }
    const inFlight = ctx.inFlight();
    (this.#inFlight ??= new Map()).set(id, inFlight);
    let deadline: NodeJS.Timeout | undefined;
    const settled = (): boolean => {
      if (deadline) clearTimeout(deadline);
      if (inFlight.cancelled) return false;
      this.#inFlight?.delete(id);
      return true;
    };
    if (handler.slow) {
      deadline = setTimeout(() => {
        const err = new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${op} did not finish within ${GET_TOKEN_DEADLINE_MS / 1000} s — the provider is slow or unreachable; try again`);
        inFlight.abort(err);
        if (settled()) this.#answerError(err, op, id, scope, started);
        inFlight.cancelled = true;
      }, GET_TOKEN_DEADLINE_MS);
      deadline.unref();
    }
    result.then(
      (data) => {
        if (settled()) this.#answerOk(id, op, data, scope, started);
      },
      (err: unknown) => {
        if (settled()) this.#answerError(err, op, id, scope, started);
      },
    );
  }

  #answerOk(id: string, op: string, data: unknown, scope: Scope, started: number): void {
    const ms = performance.now() - started;
    if (this.#d.writable()) {
      let bytes: Buffer;
      try {
        bytes = encodeOkFrame(id, data, this.#d.maxFrameBytes, this.#d.json);
      } catch (err) {
        bytes = encodeFrame(toErrorFrame(err, id));
      }
      this.#d.write(bytes);
    }
    // Recorded after the answer left: the line goes to disk with its batch either way (within
    // 100 ms), and the caller does not wait for it.
    this.#d.audit(op, 'ok', scope, ms);
  }

  #answerError(err: unknown, op: string, id: string, scope: Scope | undefined, started: number): void {
    if (!(err instanceof ProxyError) || err.code === ErrorCode.INTERNAL_ERROR) {
      this.#d.services.logger.log('error', `op ${op} failed: ${err instanceof Error ? (err.stack ?? err.message) : `a thrown ${typeof err}`}`);
    }
    this.#d.audit(op, err instanceof ProxyError ? err.code : ErrorCode.INTERNAL_ERROR, scope, performance.now() - started);
    this.#d.send(toErrorFrame(err, id));
  }
}
