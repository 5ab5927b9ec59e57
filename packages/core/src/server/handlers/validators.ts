import { DEFAULT_BUCKET } from '../../protocol/limits.js';
import type { AccountRef } from '../../protocol/ops.js';
import { assertName, assertOptionalName } from '../../protocol/validate.js';
import type { AccountKey } from '../../store/token-store.js';

/** `{provider, bucket?}` → an account key with the default bucket filled in. */
export function accountKey(payload: Record<string, unknown>): AccountKey & AccountRef {
  assertName(payload.provider, 'provider');
  assertOptionalName(payload.bucket, 'bucket');
  return { provider: payload.provider, bucket: payload.bucket ?? DEFAULT_BUCKET };
}

export const noPayload = (): Record<string, never> => ({});
