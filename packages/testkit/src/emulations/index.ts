export type { ProviderEmulation, EmulatedUser } from './common.js';
export { DEFAULT_USER } from './common.js';
export { startGitHubEmulation, type GitHubEmulationOptions } from './github.js';
export { startGoogleEmulation } from './google.js';
export { startMicrosoftEmulation, EMULATED_TENANT_ID } from './microsoft.js';
export { startGitLabEmulation } from './gitlab.js';
export type { OidcEmulationOptions } from './oidc.js';
