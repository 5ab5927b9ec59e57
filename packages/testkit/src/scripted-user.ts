/**
 * A scripted end-user: drives oidc-provider's development login/consent pages and the device
 * verification pages with fetch (redirect: 'manual') and its own cookie jar. No browser.
 */

export interface AuthorizeOptions {
  /** login name to sign in with (any name is accepted; default: the user's default login) */
  login?: string;
  /**
   * deny the request: `true`/`'login'` cancels at the first interaction page (the login page, or the
   * consent page when already signed in); `'consent'` signs in and then cancels at consent.
   * The returned redirect then carries `error=access_denied`.
   */
  deny?: boolean | 'login' | 'consent';
}

export interface ApproveDeviceOptions {
  login?: string;
  /**
   * `true`/`'confirm'` aborts on the confirmation page; `'login'` or `'consent'` cancels at that
   * interaction. Either way the next poll answers `access_denied`.
   */
  deny?: boolean | 'confirm' | 'login' | 'consent';
}

export interface FollowResult {
  status: number;
  headers: Headers;
  location: string | undefined;
  body: string;
}

export interface ScriptedUser {
  /** the login used when none is given */
  readonly defaultLogin: string;
  /**
   * Follow an authorization URL through login and consent. Returns the final redirect URL (the
   * `Location` pointing at the client's redirect_uri, with `code`, `state`, `iss`, or
   * `error=access_denied`). The redirect URL itself is never requested.
   */
  authorize(authUrl: string | URL, options?: AuthorizeOptions): Promise<string>;
  /** GET a `/paste-code` URL and return the displayed `code#state` (or `code` when there was no state) */
  readPastedCode(url: string | URL): Promise<string>;
  /** GET a URL (no redirects followed) with this user's cookies */
  followRedirect(url: string | URL): Promise<FollowResult>;
  /** enter a user code on `<issuer>/device`, confirm (or abort), sign in and consent */
  approveDevice(issuer: string, userCode: string, options?: ApproveDeviceOptions): Promise<void>;
  /** forget all cookies (sign out everywhere) */
  clearCookies(): void;
}

/** Thrown when a page the user reaches is not what the script expects. */
export class ScriptedUserError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${message} (${status} at ${url}): ${body.slice(0, 500)}`);
    this.name = 'ScriptedUserError';
  }
}

// ---------------------------------------------------------------------------------------------
// Cookie jar: cookies are kept per origin (scheme://host:port), with path matching and expiry.
// ---------------------------------------------------------------------------------------------

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  expiresAt: number;
}

function defaultPath(url: URL): string {
  const path = url.pathname;
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

class CookieJar {
  readonly #byOrigin = new Map<string, Map<string, StoredCookie>>();

  store(url: URL, setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(';');
      if (!pair) continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = defaultPath(url);
      let expiresAt = Infinity;
      for (const attribute of attributes) {
        const [rawKey, ...rest] = attribute.split('=');
        const key = (rawKey ?? '').trim().toLowerCase();
        const attrValue = rest.join('=').trim();
        if (key === 'path' && attrValue.startsWith('/')) path = attrValue;
        else if (key === 'max-age') expiresAt = Date.now() + Number(attrValue) * 1000;
        else if (key === 'expires' && expiresAt === Infinity) {
          const parsed = Date.parse(attrValue);
          if (!Number.isNaN(parsed)) expiresAt = parsed;
        }
      }
      let cookies = this.#byOrigin.get(url.origin);
      if (!cookies) {
        cookies = new Map();
        this.#byOrigin.set(url.origin, cookies);
      }
      const key = `${path}\n${name}`;
      if (expiresAt <= Date.now()) cookies.delete(key);
      else cookies.set(key, { name, value, path, expiresAt });
    }
  }

  header(url: URL): string | undefined {
    const cookies = this.#byOrigin.get(url.origin);
    if (!cookies) return undefined;
    const now = Date.now();
    const matching: StoredCookie[] = [];
    for (const [key, cookie] of cookies) {
      if (cookie.expiresAt <= now) {
        cookies.delete(key);
        continue;
      }
      if (pathMatches(url.pathname, cookie.path)) matching.push(cookie);
    }
    if (matching.length === 0) return undefined;
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }

  clear(): void {
    this.#byOrigin.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// HTML scraping helpers (the pages are oidc-provider's devInteractions and the kit's device pages)
// ---------------------------------------------------------------------------------------------

function decodeEntities(value: string): string {
  return value
    .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_m, n: string) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function hiddenValue(html: string, name: string): string | undefined {
  const re = new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`, 'i');
  const match = re.exec(html);
  return match?.[1] === undefined ? undefined : decodeEntities(match[1]);
}

function formAction(html: string): string | undefined {
  const match = /<form[^>]*action="([^"]*)"/i.exec(html);
  return match?.[1] === undefined ? undefined : decodeEntities(match[1]);
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

interface PageResult {
  url: URL;
  status: number;
  headers: Headers;
  location: string | undefined;
  body: string;
}

type DriveResult = { kind: 'redirect'; url: string } | { kind: 'page'; page: PageResult };

const MAX_STEPS = 30;

class ScriptedUserImpl implements ScriptedUser {
  readonly #jar = new CookieJar();

  constructor(readonly defaultLogin: string) {}

  clearCookies(): void {
    this.#jar.clear();
  }

  async #request(url: URL, form?: Record<string, string>): Promise<PageResult> {
    const headers: Record<string, string> = { accept: 'text/html,application/json;q=0.9' };
    const cookie = this.#jar.header(url);
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method: form ? 'POST' : 'GET', headers, body, redirect: 'manual' });
    this.#jar.store(url, res.headers.getSetCookie());
    const text = await res.text();
    return { url, status: res.status, headers: res.headers, location: res.headers.get('location') ?? undefined, body: text };
  }

  /** Paths under the authorization server's origin that the user keeps following. */
  static #isServerPage(url: URL, origin: string): boolean {
    if (url.origin !== origin) return false;
    const p = url.pathname;
    return (
      p === '/auth' ||
      p.startsWith('/auth/') ||
      p.startsWith('/interaction/') ||
      p === '/device' ||
      p.startsWith('/device/')
    );
  }

  /**
   * Follow redirects and answer interaction pages until the flow leaves the server (a redirect to
   * somewhere else: the client's redirect_uri) or lands on a non-interaction page.
   */
  async #drive(
    first: PageResult,
    origin: string,
    login: string,
    denyAt: 'login' | 'consent' | 'first' | undefined,
  ): Promise<DriveResult> {
    let res = first;
    for (let step = 0; step < MAX_STEPS; step++) {
      if (REDIRECT_STATUSES.has(res.status) && res.location) {
        const next = new URL(res.location, res.url);
        if (!ScriptedUserImpl.#isServerPage(next, origin)) return { kind: 'redirect', url: next.href };
        res = await this.#request(next);
        continue;
      }
      const interaction = /^\/interaction\/([^/]+)$/.exec(res.url.pathname);
      if (res.status === 200 && interaction) {
        const prompt = hiddenValue(res.body, 'prompt');
        const action = formAction(res.body);
        if ((prompt !== 'login' && prompt !== 'consent') || !action) {
          throw new ScriptedUserError('unrecognised interaction page', res.url.href, res.status, res.body);
        }
        if (denyAt === 'first' || denyAt === prompt) {
          res = await this.#request(new URL(`/interaction/${interaction[1]}/abort`, res.url));
          continue;
        }
        const submit = new URL(action, res.url);
        res =
          prompt === 'login'
            ? await this.#request(submit, { prompt: 'login', login, password: 'password' })
            : await this.#request(submit, { prompt: 'consent' });
        continue;
      }
      return { kind: 'page', page: res };
    }
    throw new ScriptedUserError('too many steps', res.url.href, res.status, res.body);
  }

  async authorize(authUrl: string | URL, options: AuthorizeOptions = {}): Promise<string> {
    const start = new URL(authUrl);
    const login = options.login ?? this.defaultLogin;
    const denyAt = options.deny === 'consent' ? 'consent' : options.deny ? 'first' : undefined;
    const result = await this.#drive(await this.#request(start), start.origin, login, denyAt);
    if (result.kind === 'redirect') return result.url;
    const { page } = result;
    throw new ScriptedUserError('authorization did not redirect to the client', page.url.href, page.status, page.body);
  }

  async readPastedCode(url: string | URL): Promise<string> {
    const res = await this.#request(new URL(url));
    const match = /<code id="code">([^<]*)<\/code>/.exec(res.body);
    if (res.status !== 200 || match?.[1] === undefined) {
      throw new ScriptedUserError('no pasteable code on the page', res.url.href, res.status, res.body);
    }
    return decodeEntities(match[1]);
  }

  async followRedirect(url: string | URL): Promise<FollowResult> {
    const res = await this.#request(new URL(url));
    return { status: res.status, headers: res.headers, location: res.location, body: res.body };
  }

  async approveDevice(issuer: string, userCode: string, options: ApproveDeviceOptions = {}): Promise<void> {
    const verification = new URL(`${issuer.replace(/\/+$/, '')}/device`);
    const login = options.login ?? this.defaultLogin;

    const input = await this.#request(verification);
    const xsrf = hiddenValue(input.body, 'xsrf');
    if (input.status !== 200 || !xsrf) {
      throw new ScriptedUserError('no device code form', input.url.href, input.status, input.body);
    }

    const confirmPage = await this.#request(verification, { xsrf, user_code: userCode });
    const confirmXsrf = hiddenValue(confirmPage.body, 'xsrf');
    if (confirmPage.status !== 200 || !confirmXsrf || !confirmPage.body.includes('op.deviceConfirmForm')) {
      throw new ScriptedUserError('user code was not accepted', confirmPage.url.href, confirmPage.status, confirmPage.body);
    }

    if (options.deny === true || options.deny === 'confirm') {
      const aborted = await this.#request(verification, { xsrf: confirmXsrf, user_code: userCode, abort: 'yes' });
      if (!aborted.body.includes('data-error-name="AbortedError"')) {
        throw new ScriptedUserError('device abort was not acknowledged', aborted.url.href, aborted.status, aborted.body);
      }
      return;
    }

    const confirmed = await this.#request(verification, { xsrf: confirmXsrf, user_code: userCode, confirm: 'yes' });
    const denyAt = options.deny === 'login' ? 'first' : options.deny === 'consent' ? 'consent' : undefined;
    const result = await this.#drive(confirmed, verification.origin, login, denyAt);
    if (result.kind === 'redirect') {
      throw new ScriptedUserError('device flow left the server', result.url, 0, '');
    }
    const { page } = result;
    if (denyAt) {
      if (!page.body.includes('data-error-name="AbortedError"') && !page.body.includes('access_denied')) {
        throw new ScriptedUserError('device denial was not acknowledged', page.url.href, page.status, page.body);
      }
      return;
    }
    if (page.status !== 200 || !page.body.includes('id="device-success"')) {
      throw new ScriptedUserError('device sign-in did not succeed', page.url.href, page.status, page.body);
    }
  }
}

/** A new user with an empty cookie jar. */
export function createScriptedUser(defaultLogin = 'test-user'): ScriptedUser {
  return new ScriptedUserImpl(defaultLogin);
}
