/**
 * Configured providers as OAuthProvider objects, rebuilt when the config file changes.
 */
import type { ConfigSource, CredproxyConfig, ProviderConfig } from '../config/config-file.js';
import { type Clock, systemClock } from '../util/clock.js';
import { providerNotConfigured } from './errors.js';
import { type FetchLike, OAuthProvider } from './oauth-provider.js';
import { applyPreset } from './presets/index.js';

/** Providers known to the proxy (from the config file). */
export interface ProviderCatalog {
  names(): Promise<string[]>;
}

export interface ProviderDirectoryDeps {
  config: ConfigSource;
  clock: Clock;
  fetch?: FetchLike;
  env?: NodeJS.ProcessEnv;
  /** Per-request upstream timeout, ms. */
  timeoutMs?: number;
}

export class ProviderDirectory implements ProviderCatalog {
  readonly #deps: ProviderDirectoryDeps;
  #seen: CredproxyConfig | undefined;
  readonly #providers = new Map<string, OAuthProvider>();

  constructor(deps: ProviderDirectoryDeps) {
    this.#deps = deps;
  }

  async config(): Promise<CredproxyConfig> {
    const config = await this.#deps.config.get();
    if (config !== this.#seen) {
      this.#seen = config;
      this.#providers.clear();
    }
    return config;
  }

  async names(): Promise<string[]> {
    return [...(await this.config()).providers.keys()].sort();
  }

  /** The provider, or undefined when the config has none by that name. */
  async find(name: string): Promise<OAuthProvider | undefined> {
    const config = await this.config();
    let provider = this.#providers.get(name);
    if (provider) return provider;
    const pc = config.providers.get(name);
    if (!pc) return undefined;
    const { clock, fetch, env, timeoutMs } = this.#deps;
    const deps = { clock, ...(fetch ? { fetch } : {}), ...(env ? { env } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
    const { config: resolved, quirks } = applyPreset(pc);
    provider = new OAuthProvider(resolved, deps, quirks);
    this.#providers.set(name, provider);
    return provider;
  }

  async get(name: string): Promise<OAuthProvider> {
    const provider = await this.find(name);
    if (!provider) throw providerNotConfigured(name);
    return provider;
  }
}

/**
 * Whether a provider's discovery document can be fetched and read as the proxy will at its first
 * login (`provider add` checks it; `--no-check` skips). Resolves with the issuer checked, or
 * undefined for a provider without discovery (explicit endpoints); throws the proxy's own error
 * (UPSTREAM_UNAVAILABLE, FLOW_INITIATION_FAILED, …) naming what failed.
 */
export async function checkProviderDiscovery(pc: ProviderConfig, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string | undefined> {
  const { config: resolved, quirks } = applyPreset(pc);
  if (resolved.issuer === undefined) return undefined;
  const provider = new OAuthProvider(resolved, { clock: systemClock, timeoutMs: options.timeoutMs ?? 5_000, ...(options.env ? { env: options.env } : {}) }, quirks);
  await provider.metadata();
  return resolved.issuer;
}
