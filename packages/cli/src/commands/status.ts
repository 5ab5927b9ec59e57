/** `credproxy status`: every account, its state and expiry — never a secret. */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import type { OpResult } from '../core-client.js';
import { type CliIO, accountLabel, formatExpiry, formatTable, printResult } from '../output.js';
import { withProxy } from '../proxy.js';
import { formatAccessList } from './access.js';
import { formatSessionList } from './session.js';

export function formatStatus(data: OpResult<'status'>, nowMs = Date.now()): string {
  return formatAccounts(data, nowMs) + formatOwnerNotes(data);
}

/** What the owner must know beside the accounts: panic's lock, access requests waiting. */
function formatOwnerNotes(data: OpResult<'status'>): string {
  let text = '';
  if (data.locked) text += 'LOCKED after `credproxy panic`: only ping and status answer — `credproxy unlock` serves again\n';
  const logins = data.pending_logins ?? [];
  if (logins.length > 0) {
    text += `\n${logins.length} login(s) pending — \`credproxy session status ID --wait\` follows one, \`credproxy session cancel ID\` ends it:\n`;
    text += formatSessionList(logins);
  }
  const waiting = data.access_requests ?? [];
  if (waiting.length > 0) {
    text += `\n${waiting.length} access request(s) waiting — \`credproxy access approve ID\` or \`credproxy access deny ID\`:\n`;
    text += formatAccessList(waiting);
  }
  return text;
}

function formatAccounts(data: OpResult<'status'>, nowMs: number): string {
  if (data.accounts.length === 0) return 'no accounts — log in with `credproxy login PROVIDER`\n';
  // The ACCOUNT column appears once some account knows who it is (SPEC §7).
  const named = data.accounts.some((a) => a.account !== undefined);
  const rows = data.accounts.map((a) => [a.provider, a.bucket, ...(named ? [a.account ?? '-'] : []), a.state, formatExpiry(a.expiry, nowMs)]);
  let text = formatTable(['PROVIDER', 'BUCKET', ...(named ? ['ACCOUNT'] : []), 'STATE', 'EXPIRES'], rows);
  for (const a of data.accounts.filter((acc) => acc.state === 'needs_login')) {
    const bucket = a.bucket === 'default' ? '' : ` --bucket ${a.bucket}`;
    text += `${accountLabel(a.provider, a.bucket)} needs a new login — run \`credproxy login ${a.provider}${bucket}\`\n`;
  }
  return text;
}

export async function handleStatus(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('status', {}));
  printResult(io, options.json, data, (d) => formatStatus(d));
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(program.command('status').description('accounts, their state and expiry (never secrets)')).action(
    async (opts: CommonOptions) => {
      ctx.exitCode = await handleStatus(opts, ctx.io);
    },
  );
}
