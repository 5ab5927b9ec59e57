/** `credproxy client add|list|remove`: sandboxes the proxy trusts (SPEC §4). */
import path from 'node:path';
import type { Command } from 'commander';
import { type AccountSpec, parseAccountSpec, parseDuration } from '../args.js';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import type { OpPayload, OpResult } from '../core-client.js';
import { type CliIO, accountLabel, formatExpiry, formatTable, printJson } from '../output.js';
import { UsageError } from '../exit-codes.js';
import { type ProxyConnection, withProxy } from '../proxy.js';
import { didYouMean } from '../suggest.js';

export interface ClientAddOptions extends CommonOptions {
  name: string;
  scopes: AccountSpec[];
  apiKeys: string[];
  allowLogin: boolean;
  allowRefresh: boolean;
  ttlSeconds?: number;
  /** An extra socket for this client only (absolute after parsing). */
  listen?: string;
  /** Routes the client may call through its HTTP listener. */
  routes?: string[];
  /** The HTTP listener: a socket path (absolute after parsing) or 127.0.0.1:PORT. */
  http?: string;
}

/** How a tool in the sandbox reaches the client's HTTP listener. */
function httpBase(address: string): string {
  return address.startsWith('/') ? 'http://localhost' : `http://${address}`;
}

/** What the user must know about the token: it will not be shown again, and how to hand it on. */
export function clientAddNotice(data: OpResult<'client_add'>, nowMs = Date.now()): string {
  let text =
    `client ${data.name} added. Its capability token (printed on stdout) is shown only once — store it now;\n` +
    `credproxy keeps only a hash and cannot show it again (remove and re-add the client to get a new one).\n` +
    `Give it to the sandbox without putting it on a command line: in a 0600 env file\n` +
    `(LLXPRT_CAPABILITY_TOKEN=<token>, then \`--env-file\`) or on file descriptor 3 (\`3< token-file\`).\n`;
  if (data.socket !== undefined) text += `socket for this client: ${data.socket}\n`;
  if (data.http !== undefined) {
    const base = httpBase(data.http);
    text += `HTTP listener for its routes: ${data.http}\n`;
    text +=
      data.http.startsWith('/')
        ? `  call a route: curl --unix-socket ${data.http} -H "Authorization: Bearer $TOKEN" ${base}/ROUTE/PATH\n`
        : `  SDK base URL: ${base}/ROUTE (e.g. OPENAI_BASE_URL=${base}/openai/v1), API key: the capability token\n` +
          `  HTTP_PROXY form: HTTP_PROXY=http://x:TOKEN@${data.http}, then plain http:// URLs of the route's host\n`;
  }
  if (data.expires_at !== undefined) text += `expires: ${formatExpiry(data.expires_at, nowMs)}\n`;
  return text;
}

export async function handleClientAdd(options: ClientAddOptions, io: CliIO): Promise<number> {
  const payload: OpPayload<'client_add'> = {
    name: options.name,
    scopes: options.scopes,
    api_keys: options.apiKeys,
    allow_login: options.allowLogin,
    allow_refresh: options.allowRefresh,
  };
  if (options.ttlSeconds !== undefined) payload.ttl_seconds = options.ttlSeconds;
  if (options.listen !== undefined) payload.socket = path.resolve(options.listen);
  if (options.routes !== undefined && options.routes.length > 0) payload.routes = options.routes;
  // HOST:PORT goes as written (the proxy takes only loopback and says so); anything else is a socket path.
  if (options.http !== undefined) payload.http = /^[^/]*:\d*$/.test(options.http) ? options.http : path.resolve(options.http);
  if (payload.scopes.length === 0 && (payload.api_keys ?? []).length === 0 && payload.routes === undefined) {
    throw new UsageError(
      `client ${options.name} would be granted nothing — give it --provider P[:BUCKET], --api-key NAME or --route R (it can later ask for more with request_access)`,
    );
  }
  const data = await withProxy(options.socket, io.env, async (proxy) => {
    const warnings = await unknownGrants(proxy, payload);
    const added = await proxy.call('client_add', payload);
    for (const w of warnings) io.stderr.write(`credproxy: warning: ${w}\n`);
    return added;
  });
  if (options.json) {
    printJson(io, data);
  } else {
    // Only the token on stdout, so TOKEN=$(credproxy client add ...) captures exactly it.
    io.stdout.write(`${data.capability_token}\n`);
    io.stderr.write(clientAddNotice(data));
  }
  return 0;
}

/**
 * Grants that name nothing that exists yet: allowed (the account may be logged in later), but
 * said, with a "did you mean" for a near miss — a typo here would fail only inside the sandbox.
 */
async function unknownGrants(proxy: ProxyConnection, payload: OpPayload<'client_add'>): Promise<string[]> {
  const out: string[] = [];
  try {
    const { providers } = await proxy.client.call('list_providers', {});
    const { accounts } = await proxy.client.call('status', {});
    const { keys } = await proxy.client.call('list_api_keys', {});
    const known = [...new Set([...providers, ...accounts.map((a) => a.provider)])].sort();
    for (const scope of payload.scopes) {
      if (!known.includes(scope.provider)) {
        out.push(`no provider or account named ${scope.provider} yet${didYouMean(scope.provider, known, 'provider', 'credproxy provider list')} — the client can use it once it exists`);
      }
    }
    for (const key of payload.api_keys ?? []) {
      if (!keys.includes(key)) out.push(`no API key named ${key} yet${didYouMean(key, keys, 'API key name', 'credproxy key list')} — add it with \`credproxy key set ${key}\``);
    }
  } catch {
    // Only a courtesy: client_add itself says what is wrong.
  }
  return out;
}

export function formatClientList(data: OpResult<'client_list'>, nowMs = Date.now()): string {
  if (data.clients.length === 0) return 'no clients — add one with `credproxy client add NAME --provider PROVIDER`\n';
  // Route columns only once some client has routes or an HTTP listener.
  const routed = data.clients.some((c) => (c.routes ?? []).length > 0 || c.http !== undefined);
  const rows = data.clients.map((c) => [
    c.name,
    c.scopes.map((s) => accountLabel(s.provider, s.bucket)).join(',') || '-',
    c.api_keys.join(',') || '-',
    [c.allow_login ? 'login' : '', c.allow_refresh ? 'refresh' : ''].filter(Boolean).join(',') || '-',
    c.socket ?? '-',
    ...(routed ? [(c.routes ?? []).join(',') || '-', c.http ?? '-'] : []),
    c.expires_at === undefined ? 'never' : formatExpiry(c.expires_at, nowMs),
  ]);
  return formatTable(['NAME', 'ACCOUNTS', 'API KEYS', 'RIGHTS', 'SOCKET', ...(routed ? ['ROUTES', 'HTTP'] : []), 'EXPIRES'], rows);
}

export async function handleClientList(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('client_list', {}));
  if (options.json) printJson(io, data);
  else io.stdout.write(formatClientList(data));
  return 0;
}

export async function handleClientRemove(options: CommonOptions & { name: string }, io: CliIO): Promise<number> {
  // An unknown name answers NOT_FOUND with a message that points to `client list`.
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('client_remove', { name: options.name }));
  if (options.json) printJson(io, data);
  else io.stdout.write(`removed client ${options.name}; its token no longer works and its listeners are closed\n`);
  return 0;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface ClientAddFlags extends CommonOptions {
  provider: string[];
  apiKey: string[];
  allowLogin?: boolean;
  allowRefresh?: boolean;
  ttl?: string;
  listen?: string;
  route: string[];
  http?: string;
}

export function register(program: Command, ctx: CommandContext): void {
  const client = program.command('client').description('sandbox clients: add (prints a capability token once), list, remove');
  dataOptions(
    client
      .command('add')
      .description('register a client and print its capability token once')
      .argument('<name>', 'client name')
      .option('--provider <provider[:bucket]>', 'an account the client may use (repeatable)', collect, [])
      .option('--api-key <name>', 'an API key the client may read (repeatable)', collect, [])
      .option('--allow-login', 'the client may start logins')
      .option('--allow-refresh', 'the client may force a refresh')
      .option('--ttl <duration>', 'the client expires after this long: 90s, 30m, 12h, 7d or seconds')
      .option('--listen <path>', 'also listen on this socket, for this client only')
      .option('--route <name>', 'a route the client may call through its HTTP listener (repeatable; needs --http)', collect, [])
      .option('--http <addr>', 'HTTP listener for its routes: a socket path, or 127.0.0.1:PORT (port 0 picks one)'),
  ).action(async (name: string, opts: ClientAddFlags) => {
    const options: ClientAddOptions = {
      name,
      scopes: opts.provider.map(parseAccountSpec),
      apiKeys: opts.apiKey,
      allowLogin: opts.allowLogin === true,
      allowRefresh: opts.allowRefresh === true,
    };
    if (opts.ttl !== undefined) options.ttlSeconds = parseDuration(opts.ttl);
    if (opts.listen !== undefined) options.listen = opts.listen;
    if (opts.route.length > 0) options.routes = opts.route;
    if (opts.http !== undefined) options.http = opts.http;
    if (opts.socket !== undefined) options.socket = opts.socket;
    if (opts.json !== undefined) options.json = opts.json;
    ctx.exitCode = await handleClientAdd(options, ctx.io);
  });
  dataOptions(client.command('list').description('list clients (never their tokens)')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleClientList(opts, ctx.io);
  });
  dataOptions(client.command('remove').description('remove a client and close its socket').argument('<name>', 'client name')).action(
    async (name: string, opts: CommonOptions) => {
      ctx.exitCode = await handleClientRemove({ name, ...opts }, ctx.io);
    },
  );
}
