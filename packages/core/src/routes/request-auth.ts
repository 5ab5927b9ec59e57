/**
 * Where a request on a route listener carries the client's capability token (SPEC §6):
 * - `Proxy-Authorization: Basic base64(user:TOKEN)` — what `HTTP_PROXY=http://x:TOKEN@host:port`
 *   sends — or `Proxy-Authorization: Bearer TOKEN`;
 * - `Authorization: Bearer TOKEN`;
 * - the route's own credential header in the route's format, so an SDK configured with
 *   `ANTHROPIC_API_KEY=<capability token>` works unchanged.
 * This module only finds candidates; the caller checks them (in constant time) against the client.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { credentialFromHeader } from './route-config.js';
import type { ResolvedRoute } from './route-config.js';

/** Longer candidates are not tokens; they are not even hashed. */
const MAX_TOKEN_LENGTH = 512;
const MAX_CANDIDATES = 6;

function headerValues(headers: IncomingHttpHeaders, name: string): string[] {
  const v = headers[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function schemeValue(value: string, scheme: string): string | undefined {
  const m = /^\s*([A-Za-z]+)\s+(.+?)\s*$/.exec(value);
  if (!m || m[1]!.toLowerCase() !== scheme) return undefined;
  return m[2]!;
}

/** The password of a Basic credential (or the whole text when it has no colon). */
function basicPassword(encoded: string): string {
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? decoded : decoded.slice(colon + 1);
}

/**
 * The capability-token candidates a request presents. `route` is the route the request names (or
 * undefined when it names none the client has): its header is read in its format.
 */
export function tokenCandidates(headers: IncomingHttpHeaders, route: ResolvedRoute | undefined): string[] {
  const out = new Set<string>();
  for (const v of headerValues(headers, 'proxy-authorization')) {
    const basic = schemeValue(v, 'basic');
    if (basic !== undefined) out.add(basicPassword(basic));
    const bearer = schemeValue(v, 'bearer');
    if (bearer !== undefined) out.add(bearer);
  }
  for (const v of headerValues(headers, 'authorization')) {
    const bearer = schemeValue(v, 'bearer');
    if (bearer !== undefined) out.add(bearer);
  }
  if (route !== undefined) {
    for (const v of headerValues(headers, route.header)) {
      for (const c of credentialFromHeader(route.format, v.trim())) out.add(c);
    }
  }
  return [...out].filter((t) => t.length > 0 && t.length <= MAX_TOKEN_LENGTH).slice(0, MAX_CANDIDATES);
}

/**
 * Constant-time comparison of a presented token with the expected one (both hashed first, so
 * neither the length nor any prefix leaks through timing). For listeners that hold one token.
 */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}
