/**
 * The config file (SPEC §1, §3): providers and a few proxy settings. Loaded on demand and
 * re-read when the file changes, so `credproxy provider add` reaches a running proxy.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FLOW_TYPES, type FlowType } from '../protocol/ops.js';
import { isPlainObject, NAME_PATTERN } from '../protocol/validate.js';
import { ensureUserDir, writeFileAtomic } from '../util/fs-secure.js';
import { parseStoreSettings, type StoreSettings } from './store-config.js';

export interface ProviderConfig {
  name: string;
  issuer?: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  device_authorization_endpoint?: string;
  revocation_endpoint?: string;
  userinfo_endpoint?: string;
  client_id: string;
  client_secret?: string;
  /** Name of an environment variable holding the client secret. */
  client_secret_env?: string;
  scopes: string[];
  flow: FlowType;
  redirect_uri?: string;
  callback_port?: number;
  extra_auth_params: Record<string, string>;
  /** A built-in preset (SPEC §7: github, google, microsoft, gitlab) that fills endpoints and quirks. */
  preset?: string;
  /** Microsoft's tenant (GUID, domain, organizations, consumers or common). */
  tenant?: string;
  /** The JWKS, for the id token's signing algorithm when no discovery gives it. */
  jwks_uri?: string;
  /** The token endpoint takes a JSON body instead of a form ("json"). */
  token_request?: 'form' | 'json';
  /** Send `Accept: application/json` to the token endpoint (some answer forms otherwise). */
  accept_json?: boolean;
  /** Extra parameters sent with every token endpoint request. */
  extra_token_params?: Record<string, string>;
  /** What the file left to the preset (filled by flows/presets when the provider is built). */
  defaults_from_preset?: Array<'flow' | 'scopes'>;
}

export interface CredproxyConfig {
  providers: Map<string, ProviderConfig>;
  /** Login session lifetime. */
  session_ttl_seconds: number;
  /** Pending login sessions at once. */
  max_sessions: number;
  /**
   * `"routes"` as written (SPEC §6), by name: routes/ checks and resolves each one (it sits above
   * config/ in the layer order); here only the names are checked.
   */
  routes: Map<string, unknown>;
  /** `"store"` and `"encryption"` (SPEC §8); read once at start. Absent: file store, encrypted. */
  storage?: StoreSettings;
}

export const DEFAULT_SESSION_TTL_SECONDS = 600;
export const DEFAULT_MAX_SESSIONS = 10_000;

/** A config problem: names the file, the field and the fix. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly field: string, problem: string) {
    super(`${file}: ${field} ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * Names that a name-keyed config object (providers; routes later) cannot hold: on a plain
 * object, assigning `__proto__` changes the prototype instead of storing an entry, and
 * `constructor`/`prototype` shadow what every object inherits. They are refused everywhere a
 * config name is read or written.
 */
const RESERVED_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

export function isReservedConfigName(name: string): boolean {
  return RESERVED_NAMES.has(name);
}

/**
 * Refuse a name that cannot key a config object. `collection` is the config field that holds
 * it ("providers"), `kind` what the user calls it ("provider").
 */
export function assertConfigName(collection: string, kind: string, name: string, file: string): void {
  if (RESERVED_NAMES.has(name)) {
    throw new ConfigError(
      file,
      `${collection}.${name}`,
      `uses a reserved name (${[...RESERVED_NAMES].join(', ')} cannot be ${kind} names) — choose another ${kind} name`,
    );
  }
}

/**
 * Line and column (1-based) of the first JSON syntax error in `text`, and what is wrong there,
 * found by a scan that never quotes the text: JSON.parse's own message carries an excerpt of
 * the file, which can be a client secret. Undefined when the scan finds no error.
 */
export function locateJsonError(text: string): { line: number; column: number; problem: string } | undefined {
  let i = 0;
  const fail = (problem: string): never => {
    throw new JsonSyntaxError(i, problem);
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const string = (): void => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character inside a string (escape it, e.g. \\n)');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      const e = text[i + 1];
      if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
      else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
      else fail('invalid escape sequence inside a string');
    }
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    if (i >= text.length) fail('unexpected end of file');
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail(i >= text.length ? 'unexpected end of file' : 'expected a double-quoted property name');
          string();
          ws();
          if (text[i] !== ':') fail("expected ':' after a property name");
          i++;
        }
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fail(i >= text.length ? 'unexpected end of file' : `expected ',' or '${close}'`);
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(text)) fail('invalid number');
      i = NUMBER.lastIndex;
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    fail('unexpected character (strings need double quotes; no comments or trailing commas)');
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected content after the JSON value');
    return undefined;
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) return undefined; // e.g. nesting too deep for the scan
    const before = text.slice(0, err.offset);
    const line = before.split('\n').length;
    return { line, column: err.offset - (before.lastIndexOf('\n') + 1) + 1, problem: err.problem };
  }
}

class JsonSyntaxError extends Error {
  constructor(readonly offset: number, readonly problem: string) {
    super(problem);
  }
}

/** JSON.parse, failing with a ConfigError that gives line and column, never the file's content. */
function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const at = locateJsonError(text);
    const where = at ? `${at.problem} at line ${at.line}, column ${at.column}` : 'a syntax error';
    throw new ConfigError(file, '(file)', `is not valid JSON: ${where} — fix the syntax or remove the file`);
  }
}

/** The config file's text, or undefined when missing. It may be a symlink (dotfile managers). */
async function readConfigText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** https anywhere, plain http only on loopback hosts. */
export function checkEndpointUrl(value: unknown, file: string, field: string): string {
  if (typeof value !== 'string') throw new ConfigError(file, field, 'must be a URL string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(file, field, `is not a valid URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol === 'https:') return value;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return value;
  if (url.protocol === 'http:') {
    throw new ConfigError(file, field, `uses plain http on ${url.hostname}; only loopback hosts may use http — use an https URL`);
  }
  throw new ConfigError(file, field, `must be an https URL (got ${url.protocol})`);
}

function optionalString(obj: Record<string, unknown>, key: string, file: string, prefix: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(file, `${prefix}.${key}`, 'must be a non-empty string');
  return v;
}

export function parseProvider(name: string, raw: unknown, file: string): ProviderConfig {
  const at = `providers.${name}`;
  if (!NAME_PATTERN.test(name) || name === '.' || name === '..') {
    throw new ConfigError(file, at, "is not a valid provider name: use 1-64 letters, digits, '.', '_', '@' or '-'");
  }
  assertConfigName('providers', 'provider', name, file);
  if (!isPlainObject(raw)) throw new ConfigError(file, at, 'must be an object');
  const clientId = optionalString(raw, 'client_id', file, at);
  if (clientId === undefined) throw new ConfigError(file, `${at}.client_id`, 'is missing — set the OAuth client id registered with the provider');
  const provider: ProviderConfig = {
    name,
    client_id: clientId,
    scopes: [],
    flow: 'pkce_redirect',
    extra_auth_params: {},
  };
  if (raw.issuer !== undefined) provider.issuer = checkEndpointUrl(raw.issuer, file, `${at}.issuer`);
  for (const key of ['authorization_endpoint', 'token_endpoint', 'device_authorization_endpoint', 'revocation_endpoint', 'userinfo_endpoint', 'jwks_uri'] as const) {
    if (raw[key] !== undefined) provider[key] = checkEndpointUrl(raw[key], file, `${at}.${key}`);
  }
  parseProviderOptions(provider, raw, file, at);
  if (provider.issuer === undefined && provider.token_endpoint === undefined && provider.preset === undefined) {
    throw new ConfigError(file, at, 'needs either "issuer" (for discovery) or explicit endpoints ("authorization_endpoint" and "token_endpoint")');
  }
  const secret = optionalString(raw, 'client_secret', file, at);
  if (secret !== undefined) provider.client_secret = secret;
  const secretEnv = optionalString(raw, 'client_secret_env', file, at);
  if (secretEnv !== undefined) provider.client_secret_env = secretEnv;
  if (raw.scopes !== undefined) {
    if (!Array.isArray(raw.scopes) || !raw.scopes.every((s) => typeof s === 'string' && s.length > 0 && !/\s/.test(s))) {
      throw new ConfigError(file, `${at}.scopes`, 'must be an array of scope strings without spaces, e.g. ["openid", "offline_access"]');
    }
    provider.scopes = [...raw.scopes] as string[];
  }
  if (raw.flow !== undefined) {
    if (!FLOW_TYPES.includes(raw.flow as FlowType)) {
      throw new ConfigError(file, `${at}.flow`, `must be one of ${FLOW_TYPES.join(', ')}`);
    }
    provider.flow = raw.flow as FlowType;
  }
  if (raw.redirect_uri !== undefined) provider.redirect_uri = checkEndpointUrl(raw.redirect_uri, file, `${at}.redirect_uri`);
  if (raw.callback_port !== undefined) {
    if (typeof raw.callback_port !== 'number' || !Number.isInteger(raw.callback_port) || raw.callback_port < 1 || raw.callback_port > 65535) {
      throw new ConfigError(file, `${at}.callback_port`, 'must be a port number from 1 to 65535');
    }
    provider.callback_port = raw.callback_port;
  }
  if (raw.extra_auth_params !== undefined) {
    if (!isPlainObject(raw.extra_auth_params) || !Object.values(raw.extra_auth_params).every((v) => typeof v === 'string')) {
      throw new ConfigError(file, `${at}.extra_auth_params`, 'must be an object of string values, e.g. {"prompt": "consent"}');
    }
    provider.extra_auth_params = { ...(raw.extra_auth_params as Record<string, string>) };
  }
  if (provider.flow === 'browser_redirect' && provider.redirect_uri === undefined) {
    throw new ConfigError(file, `${at}.redirect_uri`, 'is required for the browser_redirect flow: the page that shows the code to paste');
  }
  if (provider.flow === 'device_code' && provider.issuer === undefined && provider.device_authorization_endpoint === undefined && provider.preset === undefined) {
    throw new ConfigError(file, `${at}.device_authorization_endpoint`, 'is required for the device_code flow when no issuer is given');
  }
  return provider;
}

/** The preset and the options for providers that bend the standard (SPEC §7). */
function parseProviderOptions(provider: ProviderConfig, raw: Record<string, unknown>, file: string, at: string): void {
  if (raw.preset !== undefined) {
    if (typeof raw.preset !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(raw.preset)) {
      throw new ConfigError(file, `${at}.preset`, 'must be a preset name such as "github" — see `credproxy provider presets`');
    }
    provider.preset = raw.preset;
    const inherited: Array<'flow' | 'scopes'> = [];
    if (raw.flow === undefined) inherited.push('flow');
    if (raw.scopes === undefined) inherited.push('scopes');
    if (inherited.length > 0) provider.defaults_from_preset = inherited;
  }
  const tenant = optionalString(raw, 'tenant', file, at);
  if (tenant !== undefined) {
    if (!/^[A-Za-z0-9.-]{1,128}$/.test(tenant)) throw new ConfigError(file, `${at}.tenant`, 'must be a tenant id, a domain, "organizations", "consumers" or "common"');
    provider.tenant = tenant;
  }
  if (raw.token_request !== undefined) {
    if (raw.token_request !== 'form' && raw.token_request !== 'json') throw new ConfigError(file, `${at}.token_request`, 'must be "form" (the default) or "json"');
    provider.token_request = raw.token_request;
  }
  if (raw.accept_json !== undefined) {
    if (typeof raw.accept_json !== 'boolean') throw new ConfigError(file, `${at}.accept_json`, 'must be true or false');
    provider.accept_json = raw.accept_json;
  }
  if (raw.extra_token_params !== undefined) {
    if (!isPlainObject(raw.extra_token_params) || !Object.values(raw.extra_token_params).every((v) => typeof v === 'string')) {
      throw new ConfigError(file, `${at}.extra_token_params`, 'must be an object of string values, e.g. {"audience": "api"}');
    }
    provider.extra_token_params = { ...(raw.extra_token_params as Record<string, string>) };
  }
}

export function parseConfig(text: string, file: string): CredproxyConfig {
  const raw = parseJson(text, file);
  if (!isPlainObject(raw)) throw new ConfigError(file, '(file)', 'must hold a JSON object like {"providers": {}}');
  const config: CredproxyConfig = {
    providers: new Map(),
    session_ttl_seconds: DEFAULT_SESSION_TTL_SECONDS,
    max_sessions: DEFAULT_MAX_SESSIONS,
    routes: new Map(),
  };
  if (raw.routes !== undefined) {
    if (!isPlainObject(raw.routes)) throw new ConfigError(file, 'routes', 'must be an object keyed by route name');
    for (const [name, value] of Object.entries(raw.routes)) {
      assertConfigName('routes', 'route', name, file);
      config.routes.set(name, value);
    }
  }
  if (raw.providers !== undefined) {
    if (!isPlainObject(raw.providers)) throw new ConfigError(file, 'providers', 'must be an object keyed by provider name');
    for (const [name, value] of Object.entries(raw.providers)) {
      config.providers.set(name, parseProvider(name, value, file));
    }
  }
  for (const key of ['session_ttl_seconds', 'max_sessions'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(file, key, 'must be a positive whole number');
    config[key] = v;
  }
  config.storage = parseStoreSettings(raw, (field, problem) => {
    throw new ConfigError(file, field, problem);
  });
  return config;
}

export function emptyConfig(): CredproxyConfig {
  return { providers: new Map(), session_ttl_seconds: DEFAULT_SESSION_TTL_SECONDS, max_sessions: DEFAULT_MAX_SESSIONS, routes: new Map() };
}

/** Serialise providers back to the file's shape (without the derived `name`). */
function providerToJson(p: ProviderConfig): Record<string, unknown> {
  const { name: _name, ...rest } = p;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined) continue;
    if (k === 'extra_auth_params' && Object.keys(v as object).length === 0) continue;
    if (k === 'defaults_from_preset') continue;
    // Left to the preset: not written, so a later preset default reaches this provider too.
    if ((k === 'flow' || k === 'scopes') && p.defaults_from_preset?.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * Reads the config file when asked, re-parsing only when its mtime or size changed. A broken
 * file keeps the last good config in use and reports the error.
 */
export class ConfigSource {
  readonly #file: string;
  #stamp = '';
  #config: CredproxyConfig = emptyConfig();

  constructor(file: string) {
    this.#file = file;
  }

  get file(): string {
    return this.#file;
  }

  async get(): Promise<CredproxyConfig> {
    let stamp: string;
    try {
      const st = await fs.stat(this.#file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      stamp = 'missing';
    }
    if (stamp === this.#stamp) return this.#config;
    const text = stamp === 'missing' ? undefined : await readConfigText(this.#file);
    this.#config = text === undefined ? emptyConfig() : parseConfig(text, this.#file);
    this.#stamp = stamp;
    return this.#config;
  }
}

/**
 * Apply `mutate` to the file's JSON and write it back atomically (0600: it may hold a client
 * secret). The result is parsed before writing, so a bad edit never lands.
 */
export async function editConfigFile(file: string, mutate: (raw: Record<string, unknown>) => void): Promise<CredproxyConfig> {
  const text = await readConfigText(file);
  const parsed = text === undefined ? {} : parseJson(text, file);
  if (!isPlainObject(parsed)) throw new ConfigError(file, '(file)', 'must hold a JSON object like {"providers": {}}');
  const raw = parsed;
  mutate(raw);
  const next = JSON.stringify(raw, null, 2) + '\n';
  const config = parseConfig(next, file);
  await ensureUserDir(path.dirname(file));
  await writeFileAtomic(file, next);
  return config;
}

export async function addProviderToConfig(file: string, provider: ProviderConfig): Promise<void> {
  // Checked before the edit: `providers["__proto__"] = ...` would store nothing and succeed.
  assertConfigName('providers', 'provider', provider.name, file);
  await editConfigFile(file, (raw) => {
    const providers = isPlainObject(raw.providers) ? raw.providers : {};
    providers[provider.name] = providerToJson(provider);
    raw.providers = providers;
  });
}

export async function removeProviderFromConfig(file: string, name: string): Promise<boolean> {
  let removed = false;
  await editConfigFile(file, (raw) => {
    if (isPlainObject(raw.providers) && Object.hasOwn(raw.providers, name)) {
      delete raw.providers[name];
      removed = true;
    }
  });
  return removed;
}
