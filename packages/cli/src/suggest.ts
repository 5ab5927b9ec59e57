/**
 * "Did you mean …": an unknown provider, bucket or key name is answered with the closest names
 * that exist and the command that lists them, so a typo does not send the user round in a loop
 * (`credproxy token demoo` → "run `credproxy login demoo`" → "no such provider").
 */
import { OpError, CliError } from './exit-codes.js';
import { ProxyError, type ProxyClient } from './core-client.js';

/** What the hints need of a connection (proxy.ts's ProxyConnection is one). */
export interface ProxyConnection {
  readonly client: ProxyClient;
}

/** Edit distance with transpositions (optimal string alignment), stopping early past `max`. */
export function editDistance(a: string, b: string, max = 3): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The names close to `name` (case-insensitive; a prefix counts), closest first. */
export function closestNames(name: string, candidates: readonly string[]): string[] {
  const lower = name.toLowerCase();
  const limit = lower.length <= 7 ? 1 : 2;
  return candidates
    .map((c) => ({ c, d: c.toLowerCase().startsWith(lower) || lower.startsWith(c.toLowerCase()) ? 0.5 : editDistance(lower, c.toLowerCase(), limit) }))
    .filter((x) => x.d <= limit && x.c !== name)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .map((x) => x.c);
}

/** ` — did you mean `x`? …` for a message, naming what exists and where to see it. */
export function didYouMean(name: string, candidates: readonly string[], what: string, listCommand: string): string {
  const close = closestNames(name, candidates);
  if (close.length > 0) return ` — did you mean \`${close[0]}\`? (\`${listCommand}\` lists the ${what}s)`;
  if (candidates.length === 0) return ` — there are no ${what}s yet`;
  const shown = candidates.slice(0, 8).join(', ') + (candidates.length > 8 ? ', …' : '');
  return ` — the ${what}s are: ${shown} (\`${listCommand}\`)`;
}

const MISSING_ACCOUNT = new Set(['NOT_FOUND', 'NOT_LOGGED_IN', 'PROVIDER_NOT_CONFIGURED']);

/**
 * Rethrow `err` better said when it is about an account that does not exist: a provider name
 * that matches nothing configured or logged in gets "did you mean", a bucket that matches no
 * logged-in bucket of the provider likewise. Anything else is rethrown as it is.
 */
export async function explainMissingAccount(err: unknown, proxy: ProxyConnection | (() => Promise<ProxyConnection>), provider: string, bucket: string | undefined, exitCode?: number): Promise<never> {
  if (!(err instanceof ProxyError) || !MISSING_ACCOUNT.has(err.code)) throw err;
  let hint: string | undefined;
  try {
    const conn = typeof proxy === 'function' ? await proxy() : proxy;
    const { providers } = await conn.client.call('list_providers', {});
    const { accounts } = await conn.client.call('status', {});
    const known = [...new Set([...providers, ...accounts.map((a) => a.provider)])].sort();
    // Only a near miss is a typo worth a hint; otherwise the proxy's own message names the fix.
    if (!known.includes(provider)) {
      if (closestNames(provider, known).length > 0) hint = `no provider named ${provider}${didYouMean(provider, known, 'provider', 'credproxy provider list')}`;
    } else if (bucket !== undefined) {
      const buckets = accounts.filter((a) => a.provider === provider).map((a) => a.bucket);
      if (!buckets.includes(bucket) && closestNames(bucket, buckets).length > 0) {
        hint = `${provider} has no bucket ${bucket}${didYouMean(bucket, buckets, `bucket of ${provider}`, 'credproxy status')} — or log it in with \`credproxy login ${provider} --bucket ${bucket}\``;
      }
    }
  } catch {
    // The hint is a courtesy: the original error stands.
  }
  if (hint === undefined) throw err;
  const op = err instanceof OpError ? err.op : undefined;
  if (exitCode !== undefined || op === undefined) throw new CliError(hint, exitCode ?? 1);
  throw new OpError(op, new ProxyError(err.code, hint));
}

/** The same for API key names: `key get openia` → did you mean `openai`. */
export async function explainMissingKey(err: unknown, proxy: ProxyConnection, name: string): Promise<never> {
  if (!(err instanceof ProxyError) || err.code !== 'NOT_FOUND') throw err;
  let keys: string[];
  try {
    keys = (await proxy.client.call('list_api_keys', {})).keys;
  } catch {
    throw err;
  }
  throw new CliError(`no API key named ${name}${didYouMean(name, keys, 'API key name', 'credproxy key list')}`);
}
