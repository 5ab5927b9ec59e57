/**
 * `credproxy provider add|list|remove`: edit the config file. A running proxy re-reads the file
 * when it changes, so no restart is needed. The file is written atomically, 0600, and only if the
 * result parses — a bad URL or a missing field never lands.
 */
import type { Command } from 'commander';
import type { PresetSummary, ProviderConfig, ProviderPreset } from '@credproxy/core';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { type CliIO, formatTable, printResult } from '../output.js';
import { assertFlow } from './login.js';

export interface ProviderAddOptions extends CommonOptions {
  name: string;
  issuer?: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  deviceAuthorizationEndpoint?: string;
  revocationEndpoint?: string;
  /** Required, except that with --preset its absence is answered with how to register one. */
  clientId?: string;
  preset?: string;
  tenant?: string;
  clientSecretEnv?: string;
  scope?: string[];
  flow?: string;
  redirectUri?: string;
  callbackPort?: string;
  /** false with --no-check: skip fetching the discovery document now. */
  check?: boolean;
}

/** What `provider list --json` shows of a provider: never a client secret. */
export type ProviderSummary = Omit<ProviderConfig, 'client_secret' | 'userinfo_endpoint' | 'extra_auth_params'>;

async function configFile(env: NodeJS.ProcessEnv): Promise<string> {
  const { resolvePaths } = await import('@credproxy/core');
  return resolvePaths({ env }).configFile;
}

/** Config errors name the file and field; for the user they are usage errors (exit 2). */
async function asUsage<T>(fn: () => Promise<T>): Promise<T> {
  const { ConfigError } = await import('@credproxy/core');
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * What the user should fix before logging in, though the config is valid: a preset whose provider
 * requires the client secret, added without one (the login would fail at the token endpoint).
 */
export function presetWarnings(o: ProviderAddOptions, preset: ProviderPreset): string[] {
  if (preset.clientSecret !== 'required' || o.clientSecretEnv !== undefined) return [];
  const variable = `${preset.name.toUpperCase()}_OAUTH_SECRET`;
  return [
    `warning: ${preset.name} needs --client-secret-env VAR: ${preset.secretNote ?? 'the provider requires the client secret'}. Export the secret where \`credproxy serve\` runs (export ${variable}=...), then run: credproxy provider add ${o.name} --preset ${preset.name} --client-id ${o.clientId ?? 'CLIENT_ID'} --client-secret-env ${variable}`,
  ];
}

/** A config for `--preset`: the preset fills endpoints, flow and scopes unless flags override them. */
export function toPresetConfig(o: ProviderAddOptions, preset: ProviderPreset): ProviderConfig {
  if (o.clientId === undefined) {
    throw new UsageError(`--client-id is required: ${preset.registration(o.name)}`);
  }
  if (o.tenant !== undefined && preset.name !== 'microsoft') throw new UsageError('--tenant is only for --preset microsoft');
  const flow = assertFlow(o.flow);
  if (flow !== undefined && !preset.flows.includes(flow)) {
    throw new UsageError(`--flow ${flow} is not offered by ${preset.name}: use ${preset.flows.join(' or ')}`);
  }
  if ((preset.secretNeededFor ?? []).includes(flow ?? preset.defaultFlow) && o.clientSecretEnv === undefined) {
    throw new UsageError(
      `--flow ${flow ?? preset.defaultFlow} with ${preset.name} needs the client secret (${preset.secretNote ?? 'the provider requires it'}) — export it where \`credproxy serve\` runs and add --client-secret-env VAR, or use --flow ${preset.flows.find((f) => !(preset.secretNeededFor ?? []).includes(f)) ?? preset.defaultFlow}`,
    );
  }
  const config = toProviderConfig({ ...o, clientId: o.clientId }, true);
  config.preset = preset.name;
  const inherited: Array<'flow' | 'scopes'> = [];
  if (flow === undefined) inherited.push('flow');
  if (o.scope === undefined) inherited.push('scopes');
  if (inherited.length > 0) config.defaults_from_preset = inherited;
  if (flow === undefined) config.flow = preset.defaultFlow;
  if (o.scope === undefined) config.scopes = [...preset.defaultScopes];
  if (o.tenant !== undefined) config.tenant = o.tenant;
  return config;
}

export function toProviderConfig(o: ProviderAddOptions, preset = false): ProviderConfig {
  if (o.clientId === undefined) throw new UsageError('--client-id ID is required (the OAuth client id registered with the provider), or use --preset (see `credproxy provider presets`)');
  if (!preset && o.tenant !== undefined) throw new UsageError('--tenant is only for --preset microsoft');
  if (!preset && o.issuer === undefined && (o.authorizationEndpoint === undefined || o.tokenEndpoint === undefined)) {
    throw new UsageError('give --issuer URL (discovery), or --authorization-endpoint URL and --token-endpoint URL');
  }
  const config: ProviderConfig = {
    name: o.name,
    client_id: o.clientId,
    scopes: o.scope ?? [],
    flow: assertFlow(o.flow) ?? 'pkce_redirect',
    extra_auth_params: {},
  };
  if (o.issuer !== undefined) config.issuer = o.issuer;
  if (o.authorizationEndpoint !== undefined) config.authorization_endpoint = o.authorizationEndpoint;
  if (o.tokenEndpoint !== undefined) config.token_endpoint = o.tokenEndpoint;
  if (o.deviceAuthorizationEndpoint !== undefined) config.device_authorization_endpoint = o.deviceAuthorizationEndpoint;
  if (o.revocationEndpoint !== undefined) config.revocation_endpoint = o.revocationEndpoint;
  if (o.clientSecretEnv !== undefined) config.client_secret_env = o.clientSecretEnv;
  if (o.redirectUri !== undefined) config.redirect_uri = o.redirectUri;
  if (o.callbackPort !== undefined) {
    const port = Number(o.callbackPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError('--callback-port must be a port number from 1 to 65535');
    config.callback_port = port;
  }
  return config;
}

export function summarize(p: ProviderConfig): ProviderSummary {
  const { extra_auth_params: _extra, client_secret: _secret, defaults_from_preset: _inherited, ...rest } = p;
  return rest;
}

export async function handleProviderAdd(options: ProviderAddOptions, io: CliIO): Promise<number> {
  const { addProviderToConfig, checkProviderDiscovery, parseProvider, findPreset, PROVIDER_PRESETS } = await import('@credproxy/core');
  let provider: ProviderConfig;
  let parsed: ProviderConfig | undefined;
  if (options.preset !== undefined) {
    const preset = findPreset(options.preset);
    if (!preset) throw new UsageError(`there is no preset named ${options.preset} — the presets are ${[...PROVIDER_PRESETS.keys()].join(', ')} (see \`credproxy provider presets\`)`);
    provider = toPresetConfig(options, preset);
    for (const line of presetWarnings(options, preset)) io.stderr.write(`${line}\n`);
  } else {
    provider = toProviderConfig(options);
  }
  const file = await configFile(io.env);
  await asUsage(async () => {
    parsed = parseProvider(provider.name, summarize(provider), file);
  });
  if (options.check !== false) {
    // Discovery now, not at the first login: an issuer that cannot be reached is a typo or a
    // network problem the user can fix while they are looking at it.
    const issuer = await checkProviderDiscovery(parsed!, { env: io.env }).catch((err: unknown) => {
      const why = err instanceof Error ? err.message : String(err);
      throw new CliError(`${why} — check the issuer URL (and that it is reachable from here), or add it anyway with --no-check`);
    });
    if (issuer !== undefined) io.stderr.write(`checked: ${issuer} answers its discovery document\n`);
  }
  await asUsage(() => addProviderToConfig(file, provider));
  printResult(io, options.json, { provider: summarize(provider) }, () => {
    const via = provider.preset !== undefined ? ` (preset ${provider.preset}, flow ${provider.flow})` : '';
    return `added provider ${provider.name}${via} to ${file} — log in with \`credproxy login ${provider.name}\`\n`;
  });
  return ExitCode.OK;
}

export async function handleProviderList(options: CommonOptions, io: CliIO): Promise<number> {
  const { ConfigSource, findPreset } = await import('@credproxy/core');
  const file = await configFile(io.env);
  const config = await asUsage(() => new ConfigSource(file).get());
  // A preset's provider is shown as the proxy uses it: the preset's flow, scopes and endpoints
  // where the file leaves them out (an unknown preset is shown as written).
  const resolved = (p: ProviderConfig): ProviderConfig => {
    const preset = p.preset === undefined ? undefined : findPreset(p.preset);
    return preset ? preset.resolve(p) : p;
  };
  const providers = [...config.providers.values()].map((p) => summarize(resolved(p)));
  printResult(io, options.json, { providers }, (d) => {
    if (d.providers.length === 0) return `no providers in ${file} — add one with \`credproxy provider add NAME --issuer URL --client-id ID\`\n`;
    return formatTable(
      ['PROVIDER', 'PRESET', 'FLOW', 'CLIENT ID', 'ISSUER / TOKEN ENDPOINT'],
      d.providers.map((p) => [p.name, p.preset ?? '-', p.flow, p.client_id, p.issuer ?? p.token_endpoint ?? (p.preset !== undefined ? '(preset default)' : '')]),
    );
  });
  return ExitCode.OK;
}

export async function handleProviderRemove(options: CommonOptions & { name: string }, io: CliIO): Promise<number> {
  const { removeProviderFromConfig } = await import('@credproxy/core');
  const file = await configFile(io.env);
  const removed = await asUsage(() => removeProviderFromConfig(file, options.name));
  if (!removed) throw new UsageError(`no provider named ${options.name} in ${file} — see \`credproxy provider list\``);
  printResult(io, options.json, { removed: true }, () => `removed provider ${options.name} (saved tokens stay until \`credproxy logout ${options.name}\`)\n`);
  return ExitCode.OK;
}

export function formatPresets(presets: readonly PresetSummary[]): string {
  let text = formatTable(
    ['PRESET', 'FLOWS (DEFAULT FIRST)', 'CLIENT SECRET', 'REVOCATION', 'ACCOUNT NAME FROM'],
    presets.map((p) => [p.name, [p.default_flow, ...p.flows.filter((f) => f !== p.default_flow)].join(', '), p.client_secret, p.revocation, p.identity]),
  );
  text += '\nEvery preset needs a client id you register with the provider; `credproxy provider add NAME --preset P` without --client-id says how.\n';
  for (const p of presets) {
    text += `\n${p.name}: ${p.title}\n  scopes by default: ${p.default_scopes.join(' ')}\n  --issuer: ${p.issuer}\n`;
    if (p.client_secret_note) text += `  client secret: ${p.client_secret_note}\n`;
    if (p.callback_port !== undefined) text += `  fixed callback port: ${p.callback_port} (register http://127.0.0.1:${p.callback_port}/callback)\n`;
  }
  return text;
}

export async function handleProviderPresets(options: CommonOptions, io: CliIO): Promise<number> {
  const { PROVIDER_PRESETS, summarizePreset } = await import('@credproxy/core');
  const presets = [...PROVIDER_PRESETS.values()].map(summarizePreset);
  printResult(io, options.json, { presets }, (d) => formatPresets(d.presets));
  return ExitCode.OK;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function register(program: Command, ctx: CommandContext): void {
  const provider = program.command('provider').description('configure OAuth providers (edits the config file)');
  dataOptions(
    provider
      .command('add')
      .description('add or replace a provider')
      .argument('<name>', 'provider name')
      .option('--preset <preset>', 'a built-in provider: github, google, microsoft, gitlab (see `provider presets`)')
      .option('--issuer <url>', 'issuer URL (OIDC / RFC 8414 discovery); with --preset: the provider\'s base URL (Enterprise, self-managed, emulation)')
      .option('--tenant <tenant>', 'Microsoft tenant: a tenant id, a domain, organizations (default), consumers or common')
      .option('--authorization-endpoint <url>', 'authorization endpoint (without --issuer)')
      .option('--token-endpoint <url>', 'token endpoint (without --issuer)')
      .option('--device-authorization-endpoint <url>', 'device authorization endpoint')
      .option('--revocation-endpoint <url>', 'revocation endpoint (RFC 7009)')
      .option('--client-id <id>', 'OAuth client id (required; with --preset, leave it out to see how to register one)')
      .option('--client-secret-env <var>', 'environment variable holding the client secret (read by the proxy)')
      .option('--scope <scope>', 'a scope to request (repeat for more)', collect)
      .option('--flow <flow>', 'pkce_redirect (default), device_code or browser_redirect')
      .option('--redirect-uri <uri>', 'redirect URI (loopback for pkce_redirect; the code page for browser_redirect)')
      .option('--callback-port <port>', 'fixed loopback port for pkce_redirect')
      .option('--no-check', "don't fetch the issuer's discovery document now (it is fetched at the first login)"),
  ).action(async (name: string, opts: Omit<ProviderAddOptions, 'name'>) => {
    ctx.exitCode = await handleProviderAdd({ name, ...opts }, ctx.io);
  });
  dataOptions(provider.command('presets').description('the built-in provider presets and what each needs')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleProviderPresets(opts, ctx.io);
  });
  dataOptions(provider.command('list').description('list configured providers (never secrets)')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleProviderList(opts, ctx.io);
  });
  dataOptions(provider.command('remove').description('remove a provider').argument('<name>', 'provider name')).action(
    async (name: string, opts: CommonOptions) => {
      ctx.exitCode = await handleProviderRemove({ name, ...opts }, ctx.io);
    },
  );
}
