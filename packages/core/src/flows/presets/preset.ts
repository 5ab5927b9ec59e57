/**
 * A provider preset (SPEC §7): the real provider's endpoints, default flow and scopes, the quirks
 * of its dialect, how it revokes and where the account's name comes from — and, because the user
 * must register their own OAuth client, exactly how to do that.
 */
import type { ProviderConfig } from '../../config/config-file.js';
import type { FlowType } from '../../protocol/ops.js';
import type { ProviderQuirks } from '../oauth-provider.js';

export interface ProviderPreset {
  readonly name: string;
  readonly title: string;
  readonly flows: readonly FlowType[];
  readonly defaultFlow: FlowType;
  readonly defaultScopes: readonly string[];
  /** Whether the client secret is needed (`required`), useful (`optional`: says for what) or unused. */
  readonly clientSecret: 'required' | 'optional' | 'unused';
  /** What the secret is for, or why it is required. */
  readonly secretNote?: string;
  /** Flows that cannot work without the secret (GitHub's web flow for OAuth apps). */
  readonly secretNeededFor?: readonly FlowType[];
  /** A fixed loopback port, for providers that match the redirect URI's port exactly. */
  readonly callbackPort?: number;
  /** What `--issuer` means for this preset. */
  readonly issuerNote: string;
  readonly revocation: string;
  readonly identity: string;
  /** Where each quirk is documented (see project-plans/12-presets.md). */
  readonly docs: readonly string[];
  /** Steps to register a client: the URL, what to tick, the redirect URI, the command to run next. */
  registration(providerName: string): string;
  /** The config with the preset's endpoints and defaults filled in; the file's own values win. */
  resolve(config: ProviderConfig): ProviderConfig;
  quirks(config: ProviderConfig): ProviderQuirks;
}

/** The loopback redirect URI a user registers for a preset. */
export function loopbackRedirect(port?: number): string {
  return port === undefined ? 'http://127.0.0.1/callback' : `http://127.0.0.1:${port}/callback`;
}

/** Fill what the file left to the preset (flow, scopes) and the preset's fixed callback port. */
export function withPresetDefaults(config: ProviderConfig, preset: ProviderPreset): ProviderConfig {
  const out: ProviderConfig = { ...config, extra_auth_params: { ...config.extra_auth_params } };
  const inherited = config.defaults_from_preset ?? [];
  if (inherited.includes('flow')) out.flow = preset.defaultFlow;
  if (inherited.includes('scopes')) out.scopes = [...preset.defaultScopes];
  if (out.callback_port === undefined && out.redirect_uri === undefined && preset.callbackPort !== undefined) out.callback_port = preset.callbackPort;
  return out;
}

/** The id token's payload (already checked by oauth4webapi when the token was issued). */
export function idTokenClaims(idToken: unknown): Record<string, unknown> | undefined {
  if (typeof idToken !== 'string') return undefined;
  const part = idToken.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** An https URL, or an http one on a loopback host (emulations), without a trailing slash. */
export function trimBase(url: string): string {
  return url.replace(/\/+$/, '');
}
