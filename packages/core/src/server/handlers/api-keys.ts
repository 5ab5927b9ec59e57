import { assertKey, mayUseKey } from '../../clients/policy.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import { assertName, assertString } from '../../protocol/validate.js';
import type { Handler } from '../dispatch.js';
import { noPayload } from './validators.js';

function keyName(p: Record<string, unknown>): { name: string } {
  assertName(p.name, 'name');
  return { name: p.name };
}

const getApiKey: Handler<'get_api_key'> = {
  access: 'client',
  validate: keyName,
  async run(p, { identity, services }) {
    assertKey(identity, p.name);
    const key = await services.apiKeys.get(p.name);
    if (key === undefined) {
      throw new ProxyError(ErrorCode.NOT_FOUND, `no API key named ${p.name} — add it with \`credproxy key set ${p.name}\``);
    }
    return { key };
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
    return { exists: (await services.apiKeys.get(p.name)) !== undefined };
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
