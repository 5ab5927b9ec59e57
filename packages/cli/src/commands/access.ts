/**
 * `credproxy access list|approve|deny|revoke` (SPEC §9): answer what sandboxed clients ask for
 * beyond their scope. An approval is temporary scope: it ends at its TTL, or with `revoke`.
 */
import type { Command } from 'commander';
import { parseDuration } from '../args.js';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import type { OpResult } from '../core-client.js';
import { type CliIO, formatExpiry, formatTable, printResult } from '../output.js';
import { withProxy } from '../proxy.js';

type RequestInfo = OpResult<'access_list'>['requests'][number];

export interface AccessIdOptions extends CommonOptions {
  id: string;
}

export interface AccessApproveOptions extends AccessIdOptions {
  ttl?: string;
  bucket?: string;
}

/** What a request asks for, as the owner reads it. */
export function describeRequested(r: Pick<RequestInfo, 'provider' | 'bucket' | 'api_key' | 'route'>): string {
  if (r.provider !== undefined) return r.bucket !== undefined ? `${r.provider}:${r.bucket}` : `${r.provider} (any bucket)`;
  if (r.api_key !== undefined) return `key ${r.api_key}`;
  return `route ${r.route ?? '?'}`;
}

export function formatAccessList(requests: readonly RequestInfo[]): string {
  if (requests.length === 0) return 'no access requests\n';
  return formatTable(
    ['ID', 'CLIENT', 'ASKS FOR', 'STATUS', 'UNTIL', 'REASON'],
    requests.map((r) => [r.request_id, r.client, describeRequested(r), r.status, r.status === 'pending' || r.status === 'approved' ? formatExpiry(r.expires_at) : '-', r.reason ?? '']),
  );
}

export async function handleAccessList(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('access_list', {}));
  printResult(io, options.json, data, (d) => formatAccessList(d.requests));
  return 0;
}

export async function handleAccessApprove(options: AccessApproveOptions, io: CliIO): Promise<number> {
  const payload: { request_id: string; ttl_seconds?: number; bucket?: string } = { request_id: options.id };
  if (options.ttl !== undefined) payload.ttl_seconds = parseDuration(options.ttl);
  if (options.bucket !== undefined) payload.bucket = options.bucket;
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('access_approve', payload));
  printResult(io, options.json, data, (d) => `approved: ${d.client} may use ${describeRequested(d)} until ${formatExpiry(d.expires_at)}\n`);
  return 0;
}

export async function handleAccessDeny(options: AccessIdOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('access_deny', { request_id: options.id }));
  printResult(io, options.json, data, (d) => `denied: ${d.client}'s request for ${describeRequested(d)}\n`);
  return 0;
}

export async function handleAccessRevoke(options: AccessIdOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('access_revoke', { request_id: options.id }));
  printResult(io, options.json, data, (d) => `revoked: ${d.client} no longer has ${describeRequested(d)}\n`);
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  const access = program
    .command('access')
    .description("answer sandboxed clients' requests for access beyond their scope (temporary grants)");
  dataOptions(access.command('list').description('pending, approved and recently ended access requests')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleAccessList(opts, ctx.io);
  });
  dataOptions(
    access
      .command('approve <id>')
      .description('grant what was asked, for its TTL or shorter')
      .option('--ttl <duration>', 'a shorter grant than asked, e.g. 15m or 1h')
      .option('--bucket <bucket>', 'narrow a request for a provider to one bucket'),
  ).action(async (id: string, opts: AccessApproveOptions) => {
    ctx.exitCode = await handleAccessApprove({ ...opts, id }, ctx.io);
  });
  dataOptions(access.command('deny <id>').description('refuse a pending request')).action(async (id: string, opts: AccessIdOptions) => {
    ctx.exitCode = await handleAccessDeny({ ...opts, id }, ctx.io);
  });
  dataOptions(access.command('revoke <id>').description('end an approved grant now')).action(async (id: string, opts: AccessIdOptions) => {
    ctx.exitCode = await handleAccessRevoke({ ...opts, id }, ctx.io);
  });
}
