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
function connectionListed(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const v of value === undefined ? [] : Array.isArray(value) ? value : [value]) {
    for (const token of v.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '') out.add(t);
    }
  }
  return out;
}

/**
 * The headers sent upstream: the client's, minus hop-by-hop and `Proxy-*` headers,
 * `authorization` and the route's header (the client's token may be in any of them), with the
 * route's header set to the credential and `host` set to the upstream's. `accept-encoding` asks
 * only for codings the scrubber can decode.
 */
export function upstreamRequestHeaders(
  req: IncomingMessage,
  route: ResolvedRoute,
  credentialValue: string,
): Record<string, string | string[]> {
  const listed = connectionListed(req.headers.connection);
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values === undefined) continue;
    if (HOP_BY_HOP.has(name) || listed.has(name) || name.startsWith('proxy-')) continue;
    if (name === 'authorization' || name === route.header) continue;
    // Set below, or framing that undici derives from the body itself.
    if (name === 'host' || name === 'expect' || name === 'accept-encoding' || name === 'content-length') continue;
    out[name] = values.length === 1 ? values[0]! : values;
  }
  out.host = route.upstream.host;
  out['accept-encoding'] = acceptableEncodings(req.headers['accept-encoding']);
  out[route.header] = credentialValue;
  return out;
}

/**
 * The response headers passed to the client: upstream's, minus hop-by-hop and `Proxy-*` headers
 * and any `x-credproxy-error` (only the proxy itself may say a response is its own).
 */
export function clientResponseHeaders(upstream: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(upstream.connection);
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || lower.startsWith('proxy-') || lower === PROXY_ERROR_HEADER) continue;
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
