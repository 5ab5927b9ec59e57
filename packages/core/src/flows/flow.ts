/**
 * A login flow object: one per login, made by a factory, declaring its own flowType. The session
 * layer never guesses the kind of flow from a provider's name.
 */
import type { ErrorCode } from '../protocol/errors.js';
import type { FlowType } from '../protocol/ops.js';
import type { StoredToken } from '../store/token-store.js';
import type { Logger } from '../util/logger.js';
import type { CallbackRouter } from './callback-router.js';
import type { OAuthProvider } from './oauth-provider.js';

export interface FlowStart {
  auth_url: string;
  pollIntervalMs: number;
  user_code?: string;
  verification_uri?: string;
  verification_uri_complete?: string;
  /** Seconds the provider gives this login, when it says (device codes). */
  expires_in?: number;
}

/** How a flow that finishes on its own ended. */
export type FlowOutcome =
  | { status: 'complete'; token: StoredToken }
  | { status: 'denied' | 'expired' | 'failed'; code: ErrorCode; error: string };

export interface LoginFlow {
  readonly flowType: FlowType;
  start(signal?: AbortSignal): Promise<FlowStart>;
  /** Present on flows that finish without a paste: the loopback callback, device polling. */
  readonly outcome?: Promise<FlowOutcome>;
  /** Present on flows that take a pasted code (or pasted redirect URL). */
  exchange?(pasted: string, signal?: AbortSignal): Promise<StoredToken>;
  /** RFC 8628 polling interval in seconds, as it stands now (device flow). */
  readonly interval?: number;
  /**
   * The authorization URL again, for a login that joins this one. Flows that can rebuild it let
   * the session drop its copy (see authorizationUrl in authorization-code.ts).
   */
  authorizationUrl?(): Promise<string>;
  /** Stop listening or polling. Idempotent. */
  dispose(): void;
}

export interface FlowOptions {
  /** A redirect URI asked for in oauth_initiate, overriding the provider's. */
  redirectUri?: string;
  /** The session's deadline, unix ms: the flow stops by then. */
  deadline: number;
  /** For what a flow's own listener sees (malformed requests); never request data. */
  logger?: Logger;
  /** The proxy's loopback listeners, shared per fixed port (one of the flow's own when absent). */
  callbacks?: CallbackRouter;
}

export type FlowFactory = (provider: OAuthProvider, options: FlowOptions) => LoginFlow;
