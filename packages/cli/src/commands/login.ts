/**
 * `credproxy login PROVIDER`: start the proxy if needed, run a login through it, show the URL or
 * user code (and a QR code for device logins on a terminal), a spinner while waiting, then the
 * account. Ctrl-C cancels the session on the proxy. `--with-token` imports a token from stdin.
 */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { FLOW_TYPES, type FlowType, type OAuthInitiateResult, type OAuthPollResult, type OpPayload } from '../core-client.js';
import { CliError, ExitCode, exitCodeForSession, UsageError } from '../exit-codes.js';
import { type CliIO, accountLabel, formatExpiry, printJson } from '../output.js';
import { connectOrStart, initiateOrUndo, type ProxyConnection } from '../proxy.js';
import { readPiped } from '../secret-input.js';

export type FlowName = FlowType;
const FLOWS = FLOW_TYPES;

export interface LoginOptions extends CommonOptions {
  provider: string;
  bucket?: string;
  flow?: string;
  /** false with --no-browser. */
  browser: boolean;
  withToken?: boolean;
}

/** How the login opens a browser; tests pass their own. */
export type OpenUrl = (url: string) => Promise<void>;

export const openWithSystem: OpenUrl = async (url) => {
  const { default: open } = await import('open');
  const child = await open(url, { wait: false });
  child.on('error', () => undefined);
  child.unref();
};

/** Whether a browser can be opened here: not in CI, not over plain SSH without a display. */
export function canOpenBrowser(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): boolean {
  if (env.CI) return false;
  if (platform === 'darwin' || platform === 'win32') return true;
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY || env.BROWSER);
}

export function assertFlow(flow: string | undefined): FlowName | undefined {
  if (flow === undefined) return undefined;
  if (!FLOWS.includes(flow as FlowName)) throw new UsageError(`--flow must be one of ${FLOWS.join(', ')}`);
  return flow as FlowName;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** A spinner on a terminal; nothing otherwise (CI logs stay clean). */
export function spinner(stream: CliIO['stderr'], text: string): { stop(): void } {
  if (!stream.isTTY) return { stop() {} };
  let i = 0;
  const timer = setInterval(() => stream.write(`\r${FRAMES[i++ % FRAMES.length]} ${text}`), 100);
  return {
    stop() {
      clearInterval(timer);
      stream.write('\r\x1b[2K');
    },
  };
}

async function qrCode(text: string): Promise<string | undefined> {
  try {
    const { renderUnicodeCompact } = await import('uqr');
    return renderUnicodeCompact(text);
  } catch {
    return undefined;
  }
}

/** Read one line (the pasted code); rejects on Ctrl-C through `signal`. */
export function readLine(stdin: NodeJS.ReadableStream, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const cleanup = (): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      signal?.removeEventListener('abort', onAbort);
      stdin.pause();
    };
    const onData = (chunk: Buffer | string): void => {
      buf += chunk.toString();
      const nl = buf.indexOf('\n');
      if (nl !== -1) {
        cleanup();
        resolve(buf.slice(0, nl).replace(/\r$/, '').trim());
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (buf.trim()) resolve(buf.trim());
      else reject(new UsageError('no code was entered — paste the code the provider shows, then press Enter'));
    };
    const onAbort = (): void => {
      cleanup();
      reject(new CliError('login cancelled', ExitCode.INTERRUPTED));
    };
    if (signal?.aborted) {
      reject(new CliError('login cancelled', ExitCode.INTERRUPTED));
      return;
    }
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    signal?.addEventListener('abort', onAbort, { once: true });
    stdin.resume();
  });
}

/** Tell the user what to do for this login (on stderr: stdout stays for the result). */
export async function describeLogin(init: OAuthInitiateResult, io: CliIO, opened: boolean): Promise<void> {
  const err = io.stderr;
  if (init.flow_type === 'device_code') {
    err.write(`To log in, open ${init.verification_uri ?? init.auth_url}\nand enter the code: ${init.user_code ?? ''}\n`);
    if (err.isTTY) {
      const qr = await qrCode(init.verification_uri_complete ?? init.auth_url);
      if (qr) err.write(`\n${qr}\n`);
    }
  } else if (opened) {
    err.write(`Opened your browser to log in. If it did not open, visit:\n${init.auth_url}\n`);
  } else {
    err.write(`Open this URL in a browser to log in:\n${init.auth_url}\n`);
  }
}

/**
 * Wait `ms`, or less if `signal` aborts. The abort listener is removed when the time is up: a
 * login polls once a second, and a listener left per tick made Node print
 * MaxListenersExceededWarning into the spinner line after ~10 s.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Poll until the session leaves `pending`, the deadline passes or `signal` aborts. */
export async function waitForSession(
  proxy: ProxyConnection,
  sessionId: string,
  intervalMs: number,
  options: { deadline?: number; signal?: AbortSignal; onTick?: (r: OAuthPollResult) => void } = {},
): Promise<OAuthPollResult> {
  for (;;) {
    const result = await proxy.call('oauth_poll', { session_id: sessionId });
    options.onTick?.(result);
    if (result.status !== 'pending' || options.signal?.aborted) return result;
    if (options.deadline !== undefined && Date.now() >= options.deadline) return result;
    // oauth_poll only reads the proxy's state, so a short cadence costs nothing upstream.
    await sleep(Math.max(100, Math.min(intervalMs, 1_000)), options.signal);
  }
}

/**
 * How a session ended, said once: the proxy's message usually says it already ("demo: the login
 * was denied at the provider"), so the status word is added only when the message lacks it.
 */
export function describeEnded(status: OAuthPollResult['status'], error: string | undefined): string {
  if (!error) return status;
  const bare = error.replace(/^[A-Za-z0-9._@-]+: /, '');
  return bare.includes(status) ? bare : `${status}: ${bare}`;
}

/** The message and exit code for a session that did not complete. */
export function sessionFailure(result: OAuthPollResult, label: string): CliError {
  const code = exitCodeForSession(result.status);
  if (result.status === 'pending') return new CliError(`login to ${label} is still pending`, code);
  const how = describeEnded(result.status, result.error);
  const again = result.status === 'cancelled' ? '' : ` — run \`credproxy login ${label.split(':')[0]}\` to try again`;
  return new CliError(`login to ${label}: ${how}${again}`, code);
}

/**
 * A token's expiry from what a token endpoint answers: `expiry` (unix seconds; milliseconds are
 * recognised) or RFC 6749's `expires_in` (seconds from now). An already expired token is refused:
 * importing it would only fail later, at the first use.
 */
export function withExpiry(token: OpPayload<'save_token'>['token'] & { expires_in?: unknown }, nowMs: number): OpPayload<'save_token'>['token'] {
  const { expires_in: expiresIn, ...rest } = token;
  const out: OpPayload<'save_token'>['token'] = { ...rest };
  if (out.expiry === undefined && expiresIn !== undefined) {
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new UsageError('"expires_in" must be a positive number of seconds');
    }
    out.expiry = Math.floor(nowMs / 1000) + Math.floor(expiresIn);
  }
  if (typeof out.expiry === 'number') {
    const seconds = out.expiry > 1e11 ? Math.floor(out.expiry / 1000) : out.expiry;
    if (seconds <= Math.floor(nowMs / 1000)) {
      throw new UsageError(`this token expired ${new Date(seconds * 1000).toISOString()} — import a fresh one (or one with a refresh_token and a configured provider)`);
    }
  }
  return out;
}

export function parseImportedToken(text: string, nowMs = Date.now()): OpPayload<'save_token'>['token'] {
  const trimmed = text.trim();
  if (!trimmed) throw new UsageError('no token on stdin — pipe the token (or a JSON object with access_token) into `credproxy login P --with-token`');
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      throw new UsageError('stdin looks like JSON but does not parse — pass {"access_token": "...", "refresh_token": "...", "expiry": 1700000000}');
    }
    if (typeof value !== 'object' || value === null || typeof (value as { access_token?: unknown }).access_token !== 'string') {
      throw new UsageError('the JSON on stdin needs an "access_token" string');
    }
    return withExpiry(value as OpPayload<'save_token'>['token'] & { expires_in?: unknown }, nowMs);
  }
  if (/\s/.test(trimmed)) throw new UsageError('stdin holds more than one word — pass the bare access token or a JSON object');
  return { access_token: trimmed };
}

export async function handleLogin(options: LoginOptions, io: CliIO, openUrl: OpenUrl = openWithSystem): Promise<number> {
  const flow = assertFlow(options.flow);
  const label = accountLabel(options.provider, options.bucket);
  const account: { provider: string; bucket?: string } = { provider: options.provider };
  if (options.bucket !== undefined) account.bucket = options.bucket;
  const proxy = await connectOrStart(options.socket, io);
  try {
    if (options.withToken) {
      const token = parseImportedToken(await readPiped(io.stdin));
      const data = await proxy.call('save_token', { ...account, token });
      if (options.json) printJson(io, data);
      else io.stdout.write(`saved the token for ${label}\n`);
      return ExitCode.OK;
    }
    const payload: OpPayload<'oauth_initiate'> = { ...account };
    if (flow !== undefined) payload.flow = flow;
    const init = await initiateOrUndo(proxy, options.provider, options.bucket, () => proxy.call('oauth_initiate', payload));
    // From here Ctrl-C cancels the session on the proxy — also while the URL is still being shown.
    const interrupt = new AbortController();
    const onSigint = (): void => interrupt.abort();
    process.once('SIGINT', onSigint);
    let result: OAuthPollResult;
    try {
      let opened = false;
      if (options.browser && init.flow_type !== 'device_code' && canOpenBrowser(io.env)) {
        opened = await openUrl(init.auth_url).then(() => true, () => false);
      }
      await describeLogin(init, io, opened);
      if (init.flow_type === 'browser_redirect') {
        io.stderr.write('Paste the whole code the provider shows (code#state), or the full redirect URL, then press Enter: ');
        const code = await readLine(io.stdin, interrupt.signal);
        const done = await proxy.call('oauth_exchange', { session_id: init.session_id, code });
        result = { status: 'complete', provider: done.provider, bucket: done.bucket, expiry: done.expiry };
        if (done.account !== undefined) result.account = done.account;
      } else {
        const spin = spinner(io.stderr, `Waiting for you to finish logging in to ${label}… (Ctrl-C cancels)`);
        try {
          result = await waitForSession(proxy, init.session_id, init.pollIntervalMs, { signal: interrupt.signal });
        } finally {
          spin.stop();
        }
      }
    } catch (err) {
      if (interrupt.signal.aborted) result = { status: 'cancelled' };
      else throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
    if (interrupt.signal.aborted && result.status === 'pending') result = { status: 'cancelled' };
    if (result.status === 'cancelled' && interrupt.signal.aborted) {
      await proxy.call('oauth_cancel', { session_id: init.session_id }).catch(() => undefined);
      io.stderr.write('\nLogin cancelled.\n');
      return ExitCode.INTERRUPTED;
    }
    if (result.status !== 'complete') throw sessionFailure(result, label);
    if (options.json) printJson(io, result);
    else io.stdout.write(`Logged in to ${label}${result.account !== undefined ? ` as ${result.account}` : ''} — token valid until ${formatExpiry(result.expiry)}\n`);
    return ExitCode.OK;
  } finally {
    proxy.client.close();
  }
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(
    program
      .command('login')
      .description('log in to a provider through the proxy (starts the proxy if needed)')
      .argument('<provider>', 'provider name (see `credproxy provider list`)')
      .option('--bucket <bucket>', 'account bucket (default: default)')
      .option('--flow <flow>', `login flow: ${FLOWS.join(', ')} (default: the provider's)`)
      .option('--no-browser', 'do not open a browser; print the URL')
      .option('--with-token', 'import a token read from stdin instead of logging in'),
  ).action(async (provider: string, opts: Omit<LoginOptions, 'provider'>) => {
    ctx.exitCode = await handleLogin({ provider, ...opts }, ctx.io);
  });
}
