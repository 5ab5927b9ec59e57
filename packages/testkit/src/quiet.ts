/**
 * oidc-provider announces itself on the console ("Unsupported runtime" at import on Node 20,
 * development-only feature warnings at construction, a one-time note about pre-read request bodies).
 * While `withoutProviderNotices` runs, console.warn/console.info drop lines that are oidc-provider
 * notices and pass everything else through. Nested and concurrent uses share one patch (ref-counted).
 */

const NOTICE = /oidc-provider (NOTICE|WARNING):/;

let depth = 0;
let originalWarn: typeof console.warn | undefined;
let originalInfo: typeof console.info | undefined;

function isNotice(args: unknown[]): boolean {
  return typeof args[0] === 'string' && NOTICE.test(args[0]);
}

function patch(): void {
  if (depth++ > 0) return;
  const warn = console.warn;
  const info = console.info;
  originalWarn = warn;
  originalInfo = info;
  console.warn = (...args: unknown[]) => {
    if (!isNotice(args)) warn.apply(console, args);
  };
  console.info = (...args: unknown[]) => {
    if (!isNotice(args)) info.apply(console, args);
  };
}

function unpatch(): void {
  if (--depth > 0) return;
  if (originalWarn) console.warn = originalWarn;
  if (originalInfo) console.info = originalInfo;
  originalWarn = undefined;
  originalInfo = undefined;
}

export async function withoutProviderNotices<T>(enabled: boolean, fn: () => Promise<T> | T): Promise<T> {
  if (!enabled) return fn();
  patch();
  try {
    return await fn();
  } finally {
    unpatch();
  }
}
