/**
 * Route presets (SPEC §6): the upstream origin of a well-known API and how it wants its key.
 * A preset fills `upstream`, `header` and `format` of a route; fields given explicitly win.
 * Facts from /work/shared/notes/providers.md ("API-key services").
 */

export interface RoutePreset {
  readonly name: string;
  /** An origin: scheme, host and port, no path. */
  readonly upstream: string;
  /** Lower-case header name the credential is sent in. */
  readonly header: string;
  /** `{}` is the credential; a `Basic ` format has its rest base64-encoded. */
  readonly format: string;
  /** One line for `credproxy route presets`. */
  readonly description: string;
  /**
   * How a tool is pointed at the route, `{base}` being `http://LISTENER/ROUTE` and `{token}` the
   * client's capability token. For `route presets` and `client add --http` output.
   */
  readonly usage: string;
}

const PRESET_LIST: readonly RoutePreset[] = [
  {
    name: 'anthropic',
    upstream: 'https://api.anthropic.com',
    header: 'x-api-key',
    format: '{}',
    description: 'Anthropic API (x-api-key; clients send anthropic-version themselves)',
    usage: 'ANTHROPIC_BASE_URL={base} ANTHROPIC_API_KEY={token}',
  },
  {
    name: 'openai',
    upstream: 'https://api.openai.com',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'OpenAI API (Authorization: Bearer)',
    usage: 'OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY={token}',
  },
  {
    name: 'gemini',
    upstream: 'https://generativelanguage.googleapis.com',
    header: 'x-goog-api-key',
    format: '{}',
    description: 'Google Gemini API (x-goog-api-key)',
    usage: 'GOOGLE_GEMINI_BASE_URL={base} GEMINI_API_KEY={token}',
  },
  {
    name: 'github',
    upstream: 'https://api.github.com',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'GitHub REST and GraphQL API (Authorization: Bearer)',
    usage: 'GH_TOKEN={token} with HTTP_PROXY=http://x:{token}@LISTENER, or base URL {base}',
  },
  {
    name: 'github-git',
    upstream: 'https://github.com',
    header: 'authorization',
    format: 'Basic x-access-token:{}',
    description: 'git over https to github.com (Authorization: Basic x-access-token:TOKEN)',
    usage: 'git clone {base}/OWNER/REPO.git (password: {token})',
  },
  {
    name: 'groq',
    upstream: 'https://api.groq.com',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'Groq API (Authorization: Bearer)',
    usage: 'GROQ_BASE_URL={base} GROQ_API_KEY={token}',
  },
  {
    name: 'mistral',
    upstream: 'https://api.mistral.ai',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'Mistral API (Authorization: Bearer)',
    usage: 'base URL {base}/v1, API key {token}',
  },
  {
    name: 'openrouter',
    upstream: 'https://openrouter.ai',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'OpenRouter API (Authorization: Bearer)',
    usage: 'OPENAI_BASE_URL={base}/api/v1 OPENAI_API_KEY={token}',
  },
  {
    name: 'xai',
    upstream: 'https://api.x.ai',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'xAI API (Authorization: Bearer)',
    usage: 'base URL {base}/v1, API key {token}',
  },
  {
    name: 'huggingface',
    upstream: 'https://huggingface.co',
    header: 'authorization',
    format: 'Bearer {}',
    description: 'Hugging Face Hub and inference (Authorization: Bearer)',
    usage: 'HF_ENDPOINT={base} HF_TOKEN={token}',
  },
];

/** Keyed by preset name; a Map, so no name can reach Object.prototype. */
export const ROUTE_PRESETS: ReadonlyMap<string, RoutePreset> = new Map(PRESET_LIST.map((p) => [p.name, p]));

export function routePreset(name: string): RoutePreset | undefined {
  return ROUTE_PRESETS.get(name);
}

/** Every preset, in the order `credproxy route presets` shows them. */
export function listRoutePresets(): readonly RoutePreset[] {
  return PRESET_LIST;
}
