/**
 * `credproxy route add|list|remove|presets` (SPEC §6): edit the config file's `"routes"`, as
 * `provider add` edits providers. A running proxy re-reads the file when it changes; the file is
 * written atomically, 0600, and only when every route in it resolves.
 */
import type { Command } from 'commander';
import type { ResolvedRoute, RouteConfig, RoutePreset } from '@credproxy/core';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { type CliIO, formatTable, printResult } from '../output.js';

export interface RouteAddOptions extends CommonOptions {
  name: string;
  preset?: string;
  upstream?: string;
  header?: string;
  format?: string;
  apiKey?: string;
  account?: string;
}

/** A route as `route list --json` shows it: the config with its preset applied; never a secret. */
export interface RouteSummary {
  name: string;
  upstream: string;
  header: string;
  format: string;
  preset?: string;
  api_key?: string;
  account?: string;
}

async function configFile(env: NodeJS.ProcessEnv): Promise<string> {
  const { resolvePaths } = await import('@credproxy/core');
  return resolvePaths({ env }).configFile;
}

/** Config errors name the file and field; for the user they are usage errors (exit 2). */
async function asUsage<T>(fn: () => Promise<T>): Promise<T> {
  const { ConfigError, ProxyError } = await import('@credproxy/core');
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    if (err instanceof ProxyError && err.code === 'INVALID_REQUEST') throw new UsageError(err.message);
    throw err;
  }
}

export function toRouteConfig(o: RouteAddOptions): RouteConfig {
  if (o.preset === undefined && o.upstream === undefined) {
    throw new UsageError('give --preset P (see `credproxy route presets`) or --upstream URL');
  }
  if ((o.apiKey === undefined) === (o.account === undefined)) {
    throw new UsageError('give exactly one of --api-key NAME (a key stored with `credproxy key set NAME`) and --account PROVIDER[:BUCKET]');
  }
  const config: RouteConfig = {};
  if (o.preset !== undefined) config.preset = o.preset;
  if (o.upstream !== undefined) config.upstream = o.upstream;
  if (o.header !== undefined) config.header = o.header;
  if (o.format !== undefined) config.format = o.format;
  if (o.apiKey !== undefined) config.api_key = o.apiKey;
  if (o.account !== undefined) config.account = o.account;
  return config;
}

export function summarizeRoute(route: ResolvedRoute): RouteSummary {
  const out: RouteSummary = { name: route.name, upstream: route.upstream.origin, header: route.header, format: route.format };
  if (route.preset !== undefined) out.preset = route.preset;
  if (route.credential.kind === 'api_key') out.api_key = route.credential.name;
  else out.account = route.credential.bucket === 'default' ? route.credential.provider : `${route.credential.provider}:${route.credential.bucket}`;
  return out;
}

function credentialLabel(r: RouteSummary): string {
  return r.api_key !== undefined ? `key ${r.api_key}` : `account ${r.account ?? '?'}`;
}

export async function handleRouteAdd(options: RouteAddOptions, io: CliIO): Promise<number> {
  const config = toRouteConfig(options);
  const { setRouteInConfig } = await import('@credproxy/core');
  const file = await configFile(io.env);
  const route = await asUsage(() => setRouteInConfig(file, options.name, config));
  const summary = summarizeRoute(route);
  printResult(io, options.json, { route: summary }, () =>
    `added route ${route.name}: ${route.upstream.origin} with the ${credentialLabel(summary)} in ${route.header}\n` +
      `grant it to a sandbox: credproxy client add NAME --route ${route.name} --http 127.0.0.1:0\n`,
  );
  return ExitCode.OK;
}

export async function handleRouteList(options: CommonOptions, io: CliIO): Promise<number> {
  const { ConfigSource, resolveConfigRoutes } = await import('@credproxy/core');
  const file = await configFile(io.env);
  const routes = await asUsage(async () => resolveConfigRoutes((await new ConfigSource(file).get()).routes, file));
  const list = [...routes.values()].sort((a, b) => a.name.localeCompare(b.name)).map(summarizeRoute);
  printResult(io, options.json, { routes: list }, (d) => {
    if (d.routes.length === 0) return `no routes in ${file} — add one with \`credproxy route add NAME --preset P --api-key K\`\n`;
    return formatTable(
      ['ROUTE', 'UPSTREAM', 'CREDENTIAL', 'HEADER', 'PRESET'],
      d.routes.map((r) => [r.name, r.upstream, credentialLabel(r), r.header, r.preset ?? '-']),
    );
  });
  return ExitCode.OK;
}

export async function handleRouteRemove(options: CommonOptions & { name: string }, io: CliIO): Promise<number> {
  const { removeRouteFromConfig } = await import('@credproxy/core');
  const file = await configFile(io.env);
  const removed = await asUsage(() => removeRouteFromConfig(file, options.name));
  if (!removed) throw new UsageError(`no route named ${options.name} in ${file} — see \`credproxy route list\``);
  printResult(io, options.json, { removed: true }, () => `removed route ${options.name}; clients granted it get 403 from now on\n`);
  return ExitCode.OK;
}

export async function handleRoutePresets(options: CommonOptions, io: CliIO): Promise<number> {
  const { listRoutePresets } = await import('@credproxy/core');
  const presets: readonly RoutePreset[] = listRoutePresets();
  printResult(io, options.json, { presets }, (d) =>
    formatTable(
      ['PRESET', 'UPSTREAM', 'HEADER', 'FORMAT', 'DESCRIPTION'],
      d.presets.map((p) => [p.name, p.upstream, p.header, p.format, p.description]),
    ),
  );
  return ExitCode.OK;
}

export function register(program: Command, ctx: CommandContext): void {
  const route = program.command('route').description('routes: call an API through the proxy, which adds the credential (edits the config file)');
  dataOptions(
    route
      .command('add')
      .description('add or replace a route')
      .argument('<name>', 'route name (the first path segment: http://LISTENER/NAME/...)')
      .option('--preset <preset>', 'fills upstream, header and format (see `credproxy route presets`)')
      .option('--upstream <url>', 'upstream origin, such as https://api.example.com (overrides the preset)')
      .option('--header <name>', 'header the credential goes in (default authorization)')
      .option('--format <format>', 'how the credential is written, {} being it (default "Bearer {}")')
      .option('--api-key <name>', 'the stored API key to send (credproxy key set NAME)')
      .option('--account <provider[:bucket]>', 'the OAuth account whose access token to send'),
  ).action(async (name: string, opts: Omit<RouteAddOptions, 'name'>) => {
    ctx.exitCode = await handleRouteAdd({ name, ...opts }, ctx.io);
  });
  dataOptions(route.command('list').description('list configured routes (never secrets)')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleRouteList(opts, ctx.io);
  });
  dataOptions(route.command('remove').description('remove a route').argument('<name>', 'route name')).action(async (name: string, opts: CommonOptions) => {
    ctx.exitCode = await handleRouteRemove({ name, ...opts }, ctx.io);
  });
  dataOptions(route.command('presets').description('list route presets')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleRoutePresets(opts, ctx.io);
  });
}
