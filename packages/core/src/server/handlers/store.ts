/** `store_status` and `store_rekey` (SPEC §8): the owner's view of the storage and its data key. */
import type { Handler } from '../handler.js';
import { noPayload } from './validators.js';

const storeStatus: Handler<'store_status'> = {
  access: 'owner',
  validate: noPayload,
  run: (_p, { services }) => services.storage.status(),
};

const storeRekey: Handler<'store_rekey'> = {
  access: 'owner',
  validate: noPayload,
  slow: true,
  run: (_p, { services }) => services.storage.rekey(),
};

export const storeHandlers = { store_status: storeStatus, store_rekey: storeRekey };
