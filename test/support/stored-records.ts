/**
 * Read what a proxy stored, as the proxy does (its key source, its data key), for tests that
 * check the records themselves now that they are encrypted at rest (SPEC §8).
 */
import { resolvePaths, type AccountRecord } from '../../packages/core/src/index.js';
import { openConfiguredStorage } from '../../packages/core/src/store/storage.js';
import { silentLogger } from '../../packages/core/src/util/logger.js';

/** Every account record of the store the environment names (CREDPROXY_DATA_DIR, CREDPROXY_CONFIG, key source). */
export async function readStoredAccounts(env: NodeJS.ProcessEnv): Promise<AccountRecord[]> {
  const storage = await openConfiguredStorage({ paths: resolvePaths({ env, socketPath: '/nonexistent/credproxy-test.sock' }), env, logger: silentLogger });
  try {
    const out: AccountRecord[] = [];
    for (const key of await storage.tokens.list()) {
      const record = await storage.tokens.get(key);
      if (record) out.push(record);
    }
    return out;
  } finally {
    await storage.close();
  }
}
