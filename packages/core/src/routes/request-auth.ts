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

/** Whether a UTF-16 unit is whitespace as `\s` and String.prototype.trim see it. */
function isSpace(c: number): boolean {
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0) return true;
  return c > 0xff && /\s/.test(String.fromCharCode(c));
}

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** A line terminator: what `.` in a regular expression does not match. */
const LINE_BREAK = /[\n\r\u2028\u2029]/;

/**
 * The credential of `SCHEME credential` when the scheme (letters, any case) is `scheme` (lower
 * case), surrounding whitespace ignored — what /^\s*([A-Za-z]+)\s+(.+?)\s*$/ finds, without a
 * regular expression: every request on a route listener comes through here.
 */
function schemeValue(value: string, scheme: string): string | undefined {
  const v = value.trim();
  let i = 0;
  while (i < v.length && isLetter(v.charCodeAt(i))) i++;
  if (i === 0 || i !== scheme.length || i === v.length || !isSpace(v.charCodeAt(i))) return undefined;
  if (v.slice(0, i).toLowerCase() !== scheme) return undefined;
  while (isSpace(v.charCodeAt(i))) i++;
  const credential = v.slice(i);
  return LINE_BREAK.test(credential) ? undefined : credential;
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
  const out: string[] = [];
  // Distinct, non-empty, not too long, at most MAX_CANDIDATES, in the order found.
  const add = (token: string | undefined): void => {
    if (token === undefined || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return;
    if (out.length < MAX_CANDIDATES && !out.includes(token)) out.push(token);
  };
  for (const v of headerValues(headers, 'proxy-authorization')) {
    const basic = schemeValue(v, 'basic');
    if (basic !== undefined) add(basicPassword(basic));
    add(schemeValue(v, 'bearer'));
  }
  for (const v of headerValues(headers, 'authorization')) add(schemeValue(v, 'bearer'));
  if (route !== undefined) {
    for (const v of headerValues(headers, route.header)) {
      for (const c of credentialFromHeader(route.format, v.trim())) add(c);
    }
  }
  return out;
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
