/** Protocol version spoken by this implementation (llxprt-code proxy protocol v2). */
export const PROTOCOL_VERSION = 2;
/** Largest frame body accepted or sent, in bytes (SPEC §2). Configurable lower, never higher. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** An incomplete frame older than this closes the connection (slowloris guard). */
export const PARTIAL_FRAME_TIMEOUT_MS = 5_000;
/** Requests in flight on one connection before RESOURCE_EXHAUSTED. */
export const MAX_IN_FLIGHT_PER_CONNECTION = 16;
/** Connections open at once, all listeners together. */
export const MAX_CONNECTIONS = 1024;
/** get_token answers within this, else UPSTREAM_UNAVAILABLE. */
export const GET_TOKEN_DEADLINE_MS = 25_000;
/** Default freshness asked of get_token. */
export const DEFAULT_MIN_VALID_SECONDS = 60;
export const DEFAULT_BUCKET = 'default';
/** A connection that has not completed its handshake by then is closed. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Connections only the owner socket may use, so client sockets cannot lock the owner out. */
export const OWNER_RESERVED_CONNECTIONS = 64;
/**
 * Largest frame accepted before a successful handshake: a handshake is a few hundred bytes, so a
 * peer that has proven nothing cannot make the proxy buffer megabytes.
 */
export const PRE_HANDSHAKE_MAX_FRAME_BYTES = 8 * 1024;
/** Authenticated connections one client identity may hold at once (all listeners together). */
export const MAX_CONNECTIONS_PER_CLIENT = 64;
/** A client connection with nothing in flight that sends no frame for this long is closed. */
export const CLIENT_IDLE_TIMEOUT_MS = 5 * 60_000;
