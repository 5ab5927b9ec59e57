import { assertKey, mayUseKey } from '../../clients/policy.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import { assertName, assertString } from '../../protocol/validate.js';
import type { KeyAnswer } from '../../store/api-keys.js';
import type { Handler } from '../handler.js';
import { noPayload } from './validators.js';

function keyName(p: Record<string, unknown>): { name: string } {
  assertName(p.name, 'name');
  return { name: p.name };
}

function found(name: string, answer: KeyAnswer | null): KeyAnswer {
  if (answer === null) {
    throw new ProxyError(ErrorCode.NOT_FOUND, `no API key named ${name} — add it with \`credproxy key set ${name}\``);
  }
  return answer;
}

const getApiKey: Handler<'get_api_key'> = {
  access: 'client',
  validate: keyName,
  run(p, { identity, services }) {
    assertKey(identity, p.name);
    // Synchronous when the key is in memory (like a cached get_token): no promise, no disk.
    const cached = services.apiKeys.cached(p.name);
    if (cached !== undefined) return found(p.name, cached);
    return services.apiKeys.load(p.name).then((answer) => found(p.name, answer));
  },
};

const listApiKeys: Handler<'list_api_keys'> = {
  access: 'client',
  validate: noPayload,
  async run(_p, { identity, services }) {
    return { keys: (await services.apiKeys.list()).filter((n) => mayUseKey(identity, n)) };
  },
};

const hasApiKey: Handler<'has_api_key'> = {
  access: 'owner',
  validate: keyName,
  async run(p, { services }) {
    return { exists: (await services.apiKeys.load(p.name)) !== null };
  },
};

const setApiKey: Handler<'set_api_key'> = {
  access: 'owner',
  validate(p) {
    assertName(p.name, 'name');
    assertString(p.key, 'key', 1_000_000);
    return { name: p.name, key: p.key };
  },
  async run(p, { services }) {
    await services.apiKeys.set(p.name, p.key);
    return { saved: true };
  },
};

const removeApiKey: Handler<'remove_api_key'> = {
  access: 'owner',
  validate: keyName,
  async run(p, { services }) {
    return { removed: await services.apiKeys.remove(p.name) };
  },
};

export const apiKeyHandlers = {
  get_api_key: getApiKey,
  list_api_keys: listApiKeys,
  has_api_key: hasApiKey,
  set_api_key: setApiKey,
  remove_api_key: removeApiKey,
};
