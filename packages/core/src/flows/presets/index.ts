/**
 * The built-in presets (SPEC §7), by name. A provider whose config names a preset is built from
 * the preset's endpoints, defaults and quirks (see ProviderDirectory).
 */
import type { ProviderConfig } from '../../config/config-file.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import type { ProviderQuirks } from '../oauth-provider.js';
import { githubPreset } from './github.js';
import { gitlabPreset } from './gitlab.js';
import { googlePreset } from './google.js';
import { microsoftPreset } from './microsoft.js';
import type { ProviderPreset } from './preset.js';

export type { ProviderPreset } from './preset.js';
export { githubPreset, googlePreset, microsoftPreset, gitlabPreset };

export const PROVIDER_PRESETS: ReadonlyMap<string, ProviderPreset> = new Map(
  [githubPreset, googlePreset, microsoftPreset, gitlabPreset].map((p) => [p.name, p]),
);

export function findPreset(name: string): ProviderPreset | undefined {
  return PROVIDER_PRESETS.get(name);
}

export function unknownPreset(name: string): ProxyError {
  return new ProxyError(ErrorCode.PROVIDER_NOT_CONFIGURED, `there is no preset named ${name} — the presets are ${[...PROVIDER_PRESETS.keys()].join(', ')} (\`credproxy provider presets\`)`);
}

/** A provider's config with its preset applied, and the preset's quirks (none without a preset). */
export function applyPreset(config: ProviderConfig): { config: ProviderConfig; quirks: ProviderQuirks } {
  if (config.preset === undefined) return { config, quirks: {} };
  const preset = findPreset(config.preset);
  if (!preset) throw unknownPreset(config.preset);
  return { config: preset.resolve(config), quirks: preset.quirks(config) };
}

/** What `credproxy provider presets` shows of a preset. */
export interface PresetSummary {
  name: string;
  title: string;
  flows: string[];
  default_flow: string;
  default_scopes: string[];
  client_id: 'required';
  client_secret: 'required' | 'optional' | 'unused';
  client_secret_note?: string;
  callback_port?: number;
  issuer: string;
  revocation: string;
  identity: string;
  docs: string[];
}

export function summarizePreset(p: ProviderPreset): PresetSummary {
  const out: PresetSummary = {
    name: p.name,
    title: p.title,
    flows: [...p.flows],
    default_flow: p.defaultFlow,
    default_scopes: [...p.defaultScopes],
    client_id: 'required',
    client_secret: p.clientSecret,
    issuer: p.issuerNote,
    revocation: p.revocation,
    identity: p.identity,
    docs: [...p.docs],
  };
  if (p.secretNote !== undefined) out.client_secret_note = p.secretNote;
  if (p.callbackPort !== undefined) out.callback_port = p.callbackPort;
  return out;
}
