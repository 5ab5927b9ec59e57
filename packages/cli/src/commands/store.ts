/** `credproxy store status|rekey` (SPEC §8): which backend and key source are in use; replace the data key. */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { type CliIO, printResult } from '../output.js';
import { withProxy } from '../proxy.js';
import type { OpResult } from '../core-client.js';

const SOURCE_TEXT: Record<OpResult<'store_status'>['key_source'], string> = {
  key_file: 'key file (CREDPROXY_KEY_FILE)',
  passphrase: 'passphrase (scrypt)',
  keyring: 'OS keyring',
  auto_key_file: 'key file created by credproxy in the config dir',
  none: 'none — stored in plaintext',
};

function statusText(d: OpResult<'store_status'>): string {
  const lines = [
    `backend:     ${d.backend} (${d.location})${d.backend === 'redis' ? (d.connected ? ', connected' : ', NOT CONNECTED') : ''}`,
    `encrypted:   ${d.encrypted ? 'yes, AES-256-GCM per record' : 'NO'}`,
    `key source:  ${SOURCE_TEXT[d.key_source]}${d.key_location ? ` — ${d.key_location}` : ''}`,
  ];
  if (d.data_key_id) lines.push(`data key id: ${d.data_key_id}`);
  if (d.records) lines.push(`records:     ${d.records.tokens} accounts, ${d.records.api_keys} API keys, ${d.records.clients} clients`);
  for (const w of d.warnings) lines.push(`warning:     ${w}`);
  return lines.join('\n') + '\n';
}

export async function handleStoreStatus(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('store_status', {}));
  printResult(io, options.json, data, statusText);
  return 0;
}

export async function handleStoreRekey(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('store_rekey', {}));
  printResult(io, options.json, data, (d) => `new data key ${d.data_key_id}: re-encrypted ${d.rekeyed.tokens} accounts, ${d.rekeyed.api_keys} API keys, ${d.rekeyed.clients} clients\n`);
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  const store = program.command('store').description('storage: backend, encryption, data key');
  dataOptions(store.command('status').description('which backend and key source are in use')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleStoreStatus(opts, ctx.io);
  });
  dataOptions(store.command('rekey').description('replace the data key and re-encrypt every record')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleStoreRekey(opts, ctx.io);
  });
}
