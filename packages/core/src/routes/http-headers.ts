/**
 * Header rules of the forward (SPEC §6, RFC 9110 §7.6.1): what leaves for upstream and what comes
 * back to the client.
 */
import type { IncomingMessage } from 'node:http';
import type { ResolvedRoute } from './route-config.js';
import { PROXY_ERROR_HEADER } from './proxy-response.js';
import { acceptableEncodings } from './scrub.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1), plus the old Proxy-Connection. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
]);

/** The header names a Connection header lists (they are hop-by-hop too). */
function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const token of v.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '') out.add(t);
    }
  }
  return out;
}

/** Request headers never passed upstream as the client sent them (set below, or framing undici derives from the body). */
const NOT_FORWARDED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'authorization', 'host', 'expect', 'accept-encoding', 'content-length']);

/**
 * The headers sent upstream, as name/value pairs in one flat list (what undici takes; repeated
 * headers stay repeated): the client's, minus hop-by-hop and `Proxy-*` headers, `authorization`
 * and the route's header (the client's token may be in any of them), then `host` set to the
 * upstream's, `accept-encoding` asking only for codings the scrubber can decode, and last the
 * route's header with the credential.
 */
export function upstreamRequestHeaders(req: IncomingMessage, route: ResolvedRoute, credentialValue: string): string[] {
  const listed = connectionListed(req.headers.connection);
  const raw = req.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (NOT_FORWARDED.has(name) || name.startsWith('proxy-') || name === route.header || listed?.has(name) === true) continue;
    out.push(name, raw[i + 1]!);
  }
  out.push('host', route.upstream.host, 'accept-encoding', acceptableEncodings(req.headers['accept-encoding']), route.header, credentialValue);
  return out;
}

/**
 * The response headers passed to the client: upstream's, minus hop-by-hop and `Proxy-*` headers
 * and any `x-credproxy-error` (only the proxy itself may say a response is its own).
 */
export function clientResponseHeaders(upstream: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(upstream.connection);
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const name of Object.keys(upstream)) {
    const value = upstream[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower) === true || lower.startsWith('proxy-') || lower === PROXY_ERROR_HEADER) continue;
    out[lower] = value;
  }
  return out;
}

/**
 * A redirect to the route's own origin, rewritten to the route's path on the listener (path
 * form): `https://api.example.com/v2/x?y` → `/ROUTE/v2/x?y`. Other locations stay as they are.
 * `requestPath` is the upstream path the response answers (relative locations resolve against it).
 */
export function rewriteLocation(location: string, route: ResolvedRoute, requestPath: string): string {
  let target: URL;
  try {
    target = new URL(location, route.upstream.origin + requestPath);
  } catch {
    return location;
  }
  if (target.origin !== route.upstream.origin) return location;
  return `/${encodeURIComponent(route.name)}${target.pathname}${target.search}${target.hash}`;
}
