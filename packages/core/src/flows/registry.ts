/**
 * Flow factories by flow type, and per provider. A provider gets the factory of its configured
 * flow unless the login asks for another; presets can register their own factories by name.
 */
import type { FlowType } from '../protocol/ops.js';
import { browserRedirectFlow } from './browser-redirect.js';
import { deviceCodeFlow } from './device-code.js';
import type { FlowFactory } from './flow.js';
import { pkceRedirectFlow } from './pkce-redirect.js';

export class FlowRegistry {
  readonly #byType = new Map<FlowType, FlowFactory>([
    ['pkce_redirect', pkceRedirectFlow],
    ['device_code', deviceCodeFlow],
    ['browser_redirect', browserRedirectFlow],
  ]);
  readonly #byProvider = new Map<string, FlowFactory>();

  /** A provider-specific factory (presets); used when the login asks for no other flow. */
  registerProvider(provider: string, factory: FlowFactory): void {
    this.#byProvider.set(provider, factory);
  }

  factoryFor(provider: string, flow: FlowType, explicit: boolean): FlowFactory {
    if (!explicit) {
      const custom = this.#byProvider.get(provider);
      if (custom) return custom;
    }
    const factory = this.#byType.get(flow);
    if (!factory) throw new Error(`no flow factory for ${flow}`);
    return factory;
  }
}
