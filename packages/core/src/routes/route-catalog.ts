/**
 * The routes a running proxy knows: the config file's `"routes"`, checked and resolved, and
 * re-read when the file changes (as providers are), so `credproxy route add|remove` reaches a
 * running proxy without a restart. Also the config-file edits the CLI's `route` commands make.
 */
import { lstatSync, statSync } from 'node:fs';
import path from 'node:path';
import { type ConfigSource, ConfigError, editConfigFile, isReservedConfigName } from '../config/config-file.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { isPlainObject } from '../protocol/validate.js';
import { DirWatch } from '../store/backends/dir-watch.js';
import { resolveRoute, validateRouteConfig, type ResolvedRoute, type RouteConfig } from './route-config.js';

/** Routes known to the proxy (from the config file). */
export interface RouteCatalogView {
  /** Every configured route, resolved; throws when the file or a route in it is wrong. */
  all(): Promise<ReadonlyMap<string, ResolvedRoute>>;
}

/** Resolve the raw `"routes"` of a parsed config; messages name the file and the field. */
export function resolveConfigRoutes(raw: ReadonlyMap<string, unknown>, file: string): Map<string, ResolvedRoute> {
  const routes = new Map<string, ResolvedRoute>();
  for (const [name, value] of raw) {
    try {
      routes.set(name, resolveRoute(name, value));
    } catch (err) {
      if (err instanceof ProxyError) throw new ConfigError(file, `routes.${name}`, `is not valid: ${err.message}`);
      throw err;
    }
  }
  return routes;
}

export class RouteCatalog implements RouteCatalogView {
  readonly #config: ConfigSource;
  #seen: unknown;
  #routes: ReadonlyMap<string, ResolvedRoute> = new Map();
  /** One config check at a time, shared by every request that asks meanwhile. */
  #inflight: Promise<ReadonlyMap<string, ResolvedRoute>> | undefined;
  /** The config file's identity when #routes was resolved from it. */
  #stamp: string | undefined;

  /** Reports changes in the config file's directory; while live, no request needs a stat. */
  readonly #watch: DirWatch | undefined;
  /** Something in the directory changed since the file was last checked. */
  #dirty = true;
  /** The config file is a symbolic link: its target may change with no event here. */
  #linked = false;

  /**
   * `watch`: follow the config file's directory (fs.watch), so a request checks the file only
   * after a change. Without it — or while watching is unavailable — every request stats it.
   */
  constructor(config: ConfigSource, options: { watch?: boolean } = {}) {
    this.#config = config;
    if (options.watch) {
      const base = path.basename(config.file);
      this.#watch = new DirWatch(path.dirname(config.file), (name) => {
        if (name === null || name === base) this.#dirty = true;
      });
    }
  }

  all(): Promise<ReadonlyMap<string, ResolvedRoute>> {
    const now = this.current();
    return now !== undefined ? Promise.resolve(now) : this.#check();
  }

  /**
   * The routes without waiting, when the file is known unchanged: watched, no change since the
   * last read, and that read succeeded. Else undefined (call all()).
   */
  current(): ReadonlyMap<string, ResolvedRoute> | undefined {
    const unchanged = !this.#dirty && !this.#linked && this.#watch?.live === true;
    return unchanged && this.#stamp !== undefined && this.#inflight === undefined ? this.#routes : undefined;
  }

  #check(): Promise<ReadonlyMap<string, ResolvedRoute>> {
    // Every request asks, so a removed route ends at once: `credproxy route remove` edits the
    // file, and the next request must not use the route. With the directory watched, a request
    // after no change costs nothing; else a synchronous stat (microseconds — an async one is a
    // thread-pool round trip per request, once most of the time credproxy added to a request).
    this.#dirty = false;
    if (this.#watch !== undefined) this.#linked = isSymlink(this.#config.file);
    const stamp = fileStamp(this.#config.file);
    if (stamp !== undefined && stamp === this.#stamp && this.#inflight === undefined) return Promise.resolve(this.#routes);
    this.#inflight ??= this.#read(stamp)
      .catch((err: unknown) => {
        // A file that failed is read again by the next request, changed or not.
        this.#dirty = true;
        throw err;
      })
      .finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  async #read(stamp: string | undefined): Promise<ReadonlyMap<string, ResolvedRoute>> {
    const config = await this.#config.get();
    if (config !== this.#seen) {
      this.#routes = resolveConfigRoutes(config.routes, this.#config.file);
      this.#seen = config;
    }
    // The stamp taken before the read: a change landing meanwhile is seen on the next request.
    this.#stamp = stamp;
    return this.#routes;
  }

  /** Stop watching the config directory. */
  close(): void {
    this.#watch?.close();
  }

  /** Whether the routes last read have `name` (after all() or forRequests()). */
  has(name: string): boolean {
    return this.#routes.has(name);
  }

  /** The routes a request may use; a broken config file fails closed with a message for the client. */
  async forRequests(): Promise<ReadonlyMap<string, ResolvedRoute>> {
    try {
      return await this.all();
    } catch (err) {
      if (err instanceof ConfigError) {
        throw new ProxyError(
          ErrorCode.UPSTREAM_UNAVAILABLE,
          "credproxy's config file has an error, so no route is served — the owner sees it with `credproxy route list`",
          { cause: err },
        );
      }
      throw err;
    }
  }
}

/** mtime, size and inode of the file, or undefined when it cannot be read (missing: 'missing'). */
function fileStamp(file: string): string | undefined {
  try {
    const st = statSync(file, { bigint: true });
    return `${st.mtimeNs}:${st.size}:${st.ino}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : undefined;
  }
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Names a reserved name or a bad route name before the file is touched. */
function assertEditableName(name: string, file: string): void {
  if (isReservedConfigName(name)) {
    throw new ConfigError(file, `routes.${name}`, 'uses a reserved name (__proto__, constructor, prototype cannot be route names) — choose another route name');
  }
}

/**
 * Add or replace a route in the config file. The route is checked first and the whole file's
 * routes after the edit, so a bad route never lands.
 */
export async function setRouteInConfig(file: string, name: string, route: RouteConfig): Promise<ResolvedRoute> {
  assertEditableName(name, file);
  let config: RouteConfig;
  try {
    config = validateRouteConfig(name, route);
  } catch (err) {
    if (err instanceof ProxyError) throw new ConfigError(file, `routes.${name}`, `is not valid: ${err.message}`);
    throw err;
  }
  const next = await editConfigFile(file, (raw) => {
    const routes = isPlainObject(raw.routes) ? raw.routes : {};
    routes[name] = { ...config };
    raw.routes = routes;
    // Every route of the edited file must resolve: a file the proxy would refuse is never written.
    const check = new Map<string, unknown>(Object.entries(routes));
    resolveConfigRoutes(check, file);
  });
  return resolveConfigRoutes(next.routes, file).get(name)!;
}

export async function removeRouteFromConfig(file: string, name: string): Promise<boolean> {
  let removed = false;
  await editConfigFile(file, (raw) => {
    if (isPlainObject(raw.routes) && Object.hasOwn(raw.routes, name)) {
      delete raw.routes[name];
      removed = true;
    }
  });
  return removed;
}
