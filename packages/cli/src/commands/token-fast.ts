/**
 * The fast path of `credproxy token`: plain arguments are parsed here and answered with one
 * round trip, without loading commander or the other commands' modules. Scripts call this per
 * request, so every module it imports costs them startup time (project-plans/06-bench-hardening.md).
 */
import type { CommonOptions } from '../command-kit.js';
import type { OpPayload } from '../core-client.js';
import { CliError } from '../exit-codes.js';
import { type CliIO, printResult } from '../output.js';
import { requestOnce, withProxy, withTokenFromFd } from '../proxy.js';

export interface TokenOptions extends CommonOptions {
  provider: string;
  bucket?: string;
  /** Refresh first when the token expires within this many seconds. */
  minValid?: number;
  /** Read the capability token of a sandbox client from this descriptor. */
  tokenFd?: string;
}

export async function handleToken(options: TokenOptions, io: CliIO): Promise<number> {
  const payload: OpPayload<'get_token'> = { provider: options.provider };
  if (options.bucket !== undefined) payload.bucket = options.bucket;
  if (options.minValid !== undefined) payload.min_valid_seconds = options.minValid;
  // A missing account answers NOT_FOUND ("… is not logged in — run `credproxy login …`"): exit 6.
  const env = withTokenFromFd(io.env, options.tokenFd);
  const data = await requestOnce(options.socket, env, 'get_token', payload).catch(async (err: unknown) => {
    // Only on the error path: a typo gets "did you mean" instead of "run credproxy login <typo>".
    const { explainMissingAccount } = await import('../suggest.js');
    return withProxy(options.socket, env, (proxy) => explainMissingAccount(err, proxy, options.provider, options.bucket));
  });
  // A provider whose tokens live shorter than --min-valid cannot meet it: say so instead of
  // handing out a token that expires before the caller expects.
  if (options.minValid !== undefined && data.expiry - Math.floor(Date.now() / 1000) < options.minValid) {
    const left = Math.max(0, data.expiry - Math.floor(Date.now() / 1000));
    throw new CliError(`the ${options.provider} token is valid for only ${left} s more, less than --min-valid ${options.minValid} even after a refresh — ask for less, or fetch a token per request`);
  }
  printResult(io, options.json, data, (d) => `${d.access_token}\n`);
  return 0;
}

/**
 * The plain forms only: one PROVIDER, `--bucket B`, `--min-valid S`, `--socket P`, `--token-fd N`
 * (also with `=`), `--json`. Anything else returns undefined and commander parses it (and reports errors).
 */
export function parseTokenArgs(args: readonly string[]): TokenOptions | undefined {
  let provider: string | undefined;
  const out: Omit<TokenOptions, 'provider'> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const value = (): string | undefined => {
      const v = inline ?? args[++i];
      return v === undefined || v === '' || v.startsWith('-') ? undefined : v;
    };
    switch (flag) {
      case '--json':
        if (inline !== undefined) return undefined;
        out.json = true;
        break;
      case '--bucket':
      case '--socket':
      case '--token-fd': {
        const v = value();
        if (v === undefined) return undefined;
        out[flag === '--bucket' ? 'bucket' : flag === '--socket' ? 'socket' : 'tokenFd'] = v;
        break;
      }
      case '--min-valid': {
        const v = value();
        if (v === undefined || !/^\d+$/.test(v)) return undefined;
        out.minValid = Number(v);
        break;
      }
      default:
        if (arg.startsWith('-') || provider !== undefined) return undefined;
        provider = arg;
    }
  }
  return provider === undefined ? undefined : { provider, ...out };
}

export function runFast(args: readonly string[], io: CliIO): Promise<number> | undefined {
  const options = parseTokenArgs(args);
  return options ? handleToken(options, io) : undefined;
}

