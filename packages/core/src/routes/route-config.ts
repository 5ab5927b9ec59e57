/**
 * A route's configuration (SPEC §6): `"routes": {NAME: {upstream, api_key | account, header?,
 * format?, preset?}}` — checked where it enters, each message naming the field and the fix, and
 * resolved into the form the forwarder uses.
 */
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { DEFAULT_BUCKET } from '../protocol/limits.js';
import { isName, isPlainObject } from '../protocol/validate.js';
import { addressPolicyFor, bareHostname, isLoopbackHost, type AddressPolicy } from './address-guard.js';
import { ROUTE_PRESETS, routePreset } from './presets.js';

/** A route as written in the config file and sent in ops. */
export interface RouteConfig {
  /** An origin: `https://api.anthropic.com`; plain `http` only for loopback hosts. */
  upstream?: string;
  /** Name of a stored API key. Exactly one of api_key and account. */
  api_key?: string;
  /** An OAuth account, `PROVIDER[:BUCKET]`. */
  account?: string;
  /** Header the credential goes in (default `authorization`). */
  header?: string;
  /** How the credential is written, `{}` being the credential (default `Bearer {}`). */
  format?: string;
  /** Fills upstream, header and format; explicit fields win. */
  preset?: string;
}

export const DEFAULT_ROUTE_HEADER = 'authorization';
export const DEFAULT_ROUTE_FORMAT = 'Bearer {}';

const ROUTE_FIELDS: ReadonlySet<string> = new Set(['upstream', 'api_key', 'account', 'header', 'format', 'preset']);

/** Where the secret of a route comes from. */
export type RouteCredentialRef =
  | { readonly kind: 'api_key'; readonly name: string }
  | { readonly kind: 'account'; readonly provider: string; readonly bucket: string };

export interface RouteUpstream {
  /** `https://api.github.com` or `http://127.0.0.1:8080`: what `new URL(x).origin` gives. */
  readonly origin: string;
  readonly protocol: 'https:' | 'http:';
  /** Without IPv6 brackets and final dot, lower case. */
  readonly hostname: string;
  /** As in a Host header and URL.host: hostname (bracketed for IPv6) and a non-default port. */
  readonly host: string;
  readonly port: number;
  /** Which resolved addresses this upstream's connections may reach. */
  readonly addressPolicy: AddressPolicy;
}

/** A checked route with its preset applied: everything the forwarder needs, no secret. */
export interface ResolvedRoute {
  readonly name: string;
  readonly upstream: RouteUpstream;
  /** Lower case. */
  readonly header: string;
  readonly format: string;
  readonly credential: RouteCredentialRef;
  readonly preset?: string;
}

function invalid(message: string): never {
  throw new ProxyError(ErrorCode.INVALID_REQUEST, message);
}

// Names that could reach Object.prototype if a route table were ever a plain object.
const PROTOTYPE_NAMES: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The project's name rule (SPEC §3), minus the names of Object.prototype's machinery. */
export function isRouteName(value: unknown): value is string {
  return isName(value) && !PROTOTYPE_NAMES.has(value);
}

export function assertRouteName(value: unknown, field = 'route name'): asserts value is string {
  if (!isRouteName(value)) {
    invalid(
      `${field} must be 1-64 characters of letters, digits, '.', '_', '@' or '-' ` +
        `(not '.', '..', '__proto__', 'constructor' or 'prototype')`,
    );
  }
}

// RFC 9110 §5.6.2 token.
const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// RFC 9110 §5.5 field-value characters, without CR, LF and NUL; obs-text kept to latin-1.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Headers the credential may not go in: framing, routing and the proxy's own. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);

function assertHeaderName(value: string, field: string): void {
  if (!HEADER_TOKEN.test(value)) {
    invalid(`${field} must be an HTTP header name (letters, digits and !#$%&'*+.^_\`|~-), such as x-api-key`);
  }
  const lower = value.toLowerCase();
  if (RESERVED_HEADERS.has(lower) || lower.startsWith('proxy-')) {
    invalid(`${field} cannot be ${lower}: that header frames or routes the request — use authorization or the API's own key header`);
  }
}

function assertFormat(value: string, field: string): void {
  if (!value.includes('{}')) invalid(`${field} must contain {} where the credential goes, such as "Bearer {}"`);
  if (!HEADER_VALUE.test(value)) invalid(`${field} must be printable text without line breaks`);
}

/** Check an upstream origin and take it apart. */
export function parseUpstream(value: string, field = 'upstream'): RouteUpstream {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    invalid(`${field} must be an origin such as https://api.anthropic.com`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    invalid(`${field} must start with https:// (got ${url.protocol})`);
  }
  if (url.username !== '' || url.password !== '') {
    invalid(`${field} must not carry a user or password — store the secret with \`credproxy key set\` and name it in api_key`);
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    invalid(`${field} must be an origin without a path, such as ${url.origin} — the path goes in the request: http://LISTENER/ROUTE/PATH`);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    invalid(`${field} uses plain http, which is only allowed for loopback hosts (localhost, 127.0.0.1, [::1]) — use https://${url.host}`);
  }
  const protocol = url.protocol;
  const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port);
  return {
    origin: url.origin,
    protocol,
    hostname: bareHostname(url.hostname),
    host: url.host,
    port,
    addressPolicy: addressPolicyFor(url.hostname),
  };
}

/** `PROVIDER[:BUCKET]` → the account reference. */
export function parseAccountRef(value: string, field = 'account'): RouteCredentialRef {
  const colon = value.indexOf(':');
  const provider = colon === -1 ? value : value.slice(0, colon);
  const bucket = colon === -1 ? DEFAULT_BUCKET : value.slice(colon + 1);
  if (!isName(provider) || !isName(bucket)) {
    invalid(`${field} must be PROVIDER or PROVIDER:BUCKET, each 1-64 letters, digits, '.', '_', '@' or '-' (got ${JSON.stringify(value.slice(0, 80))})`);
  }
  return { kind: 'account', provider, bucket };
}

function optionalString(raw: Record<string, unknown>, key: string, field: string): string | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) invalid(`${field}.${key} must be a non-empty string`);
  if (value.length > 2048) invalid(`${field}.${key} is longer than 2048 characters`);
  return value;
}

/**
 * Check a route's raw config (from JSON or an op) and return it typed. Unknown fields are refused
 * so a typo (`apikey`) does not silently make a route without a credential.
 */
export function validateRouteConfig(name: string, raw: unknown): RouteConfig {
  const field = `routes.${name}`;
  assertRouteName(name, 'route name');
  if (!isPlainObject(raw)) invalid(`${field} must be an object such as {"preset": "anthropic", "api_key": "anthropic"}`);
  for (const key of Object.keys(raw)) {
    if (!ROUTE_FIELDS.has(key)) {
      invalid(`${field} has an unknown field ${JSON.stringify(key.slice(0, 40))} — the fields are upstream, api_key, account, header, format, preset`);
    }
  }
  const config: RouteConfig = {};
  const preset = optionalString(raw, 'preset', field);
  const upstream = optionalString(raw, 'upstream', field);
  const apiKey = optionalString(raw, 'api_key', field);
  const account = optionalString(raw, 'account', field);
  const header = optionalString(raw, 'header', field);
  const format = optionalString(raw, 'format', field);

  if (preset !== undefined) {
    if (!ROUTE_PRESETS.has(preset)) {
      invalid(`${field}.preset: no preset ${JSON.stringify(preset.slice(0, 40))} — the presets are ${[...ROUTE_PRESETS.keys()].join(', ')}`);
    }
    config.preset = preset;
  }
  if (upstream !== undefined) {
    parseUpstream(upstream, `${field}.upstream`);
    config.upstream = upstream;
  } else if (preset === undefined) {
    invalid(`${field} needs an upstream (such as https://api.example.com) or a preset (credproxy route presets lists them)`);
  }
  if ((apiKey === undefined) === (account === undefined)) {
    invalid(`${field} needs exactly one of api_key (a key stored with \`credproxy key set NAME\`) and account (PROVIDER[:BUCKET] of a login)`);
  }
  if (apiKey !== undefined) {
    if (!isName(apiKey)) invalid(`${field}.api_key must be a key name: 1-64 letters, digits, '.', '_', '@' or '-'`);
    config.api_key = apiKey;
  }
  if (account !== undefined) {
    parseAccountRef(account, `${field}.account`);
    config.account = account;
  }
  if (header !== undefined) {
    assertHeaderName(header, `${field}.header`);
    config.header = header;
  }
  if (format !== undefined) {
    assertFormat(format, `${field}.format`);
    config.format = format;
  }
  return config;
}

/** Check a route and apply its preset: preset values first, explicit fields over them. */
export function resolveRoute(name: string, raw: unknown): ResolvedRoute {
  const config = validateRouteConfig(name, raw);
  const preset = config.preset === undefined ? undefined : routePreset(config.preset);
  // validateRouteConfig guarantees one of the two.
  const upstream = parseUpstream((config.upstream ?? preset?.upstream)!, `routes.${name}.upstream`);
  const credential: RouteCredentialRef =
    config.api_key !== undefined ? { kind: 'api_key', name: config.api_key } : parseAccountRef(config.account!);
  const route: ResolvedRoute = {
    name,
    upstream,
    header: (config.header ?? preset?.header ?? DEFAULT_ROUTE_HEADER).toLowerCase(),
    format: config.format ?? preset?.format ?? DEFAULT_ROUTE_FORMAT,
    credential,
    ...(config.preset !== undefined ? { preset: config.preset } : {}),
  };
  return route;
}

/**
 * The config file's `"routes"` object → routes by name. A Map, so a route called `toString`
 * cannot collide with anything; prototype names are refused by the name rule.
 */
export function resolveRoutes(raw: unknown): Map<string, ResolvedRoute> {
  const routes = new Map<string, ResolvedRoute>();
  if (raw === undefined) return routes;
  if (!isPlainObject(raw)) invalid('routes must be an object of NAME: {upstream | preset, api_key | account, ...}');
  for (const name of Object.keys(raw)) routes.set(name, resolveRoute(name, raw[name]));
  return routes;
}

/** A route written back as config (for `route list` and the config file): never a secret. */
export function routeToConfig(route: ResolvedRoute): RouteConfig {
  const config: RouteConfig = { upstream: route.upstream.origin, header: route.header, format: route.format };
  if (route.preset !== undefined) config.preset = route.preset;
  if (route.credential.kind === 'api_key') config.api_key = route.credential.name;
  else config.account = `${route.credential.provider}:${route.credential.bucket}`;
  return config;
}

export function isBasicFormat(format: string): boolean {
  return /^basic /i.test(format);
}

/**
 * The header value for a secret: `{}` replaced by it; a `Basic ` format has the rest
 * base64-encoded as HTTP requires (`Basic x-access-token:{}` → `Basic base64("x-access-token:S")`,
 * RFC 7617 §2).
 */
export function formatCredential(format: string, secret: string): string {
  if (secret.length === 0) {
    throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, 'the stored credential is empty — store it again (credproxy key set NAME, or log in again)');
  }
  const filled = format.split('{}').join(secret);
  if (isBasicFormat(format)) {
    return format.slice(0, 6) + Buffer.from(filled.slice(6), 'utf8').toString('base64');
  }
  if (!HEADER_VALUE.test(filled)) {
    throw new ProxyError(
      ErrorCode.UPSTREAM_UNAVAILABLE,
      'the stored credential has characters an HTTP header cannot carry (a line break or control character) — store it again with `credproxy key set NAME`',
    );
  }
  return filled;
}

/**
 * What a header value written in `format` carries in place of `{}` — the candidates for a
 * capability token a client sent the way an SDK sends its API key. Empty when it does not fit.
 */
export function credentialFromHeader(format: string, value: string): string[] {
  const out: string[] = [];
  let text = value;
  let template = format;
  if (isBasicFormat(format)) {
    if (!isBasicFormat(value)) return out;
    const decoded = Buffer.from(value.slice(6).trim(), 'base64').toString('utf8');
    // Basic credentials are user:password; a tool lets the user pick the user name, so the
    // password alone is also a candidate (git asks for "password: TOKEN").
    const colon = decoded.indexOf(':');
    if (colon !== -1) out.push(decoded.slice(colon + 1));
    text = decoded;
    template = format.slice(6);
  }
  const parts = template.split('{}');
  if (parts.length === 2) {
    const [pre, post] = parts as [string, string];
    if (text.length >= pre.length + post.length && text.startsWith(pre) && text.endsWith(post)) {
      out.push(text.slice(pre.length, text.length - post.length));
    }
  }
  return [...new Set(out)];
}
