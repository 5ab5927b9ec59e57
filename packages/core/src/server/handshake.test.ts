import { expect, it } from 'vitest';
import { OWNER, type Identity } from '../clients/policy.js';
import type { ClientRecord } from '../clients/registry.js';
import { encodeFrame } from '../protocol/codec.js';
import { HandshakeAnswers, handshakeAnswerFrame, negotiateHandshake } from './handshake.js';

const answers = new HandshakeAnswers();
const encodeHandshakeOk = answers.encode.bind(answers);

function admitted(identity: Identity, serverVersion = '1.2.3') {
  const outcome = negotiateHandshake({
    payload: { minVersion: 1, maxVersion: 2 },
    binding: { kind: 'owner' },
    peer: {},
    gate: { authenticate: () => identity },
    serverVersion,
  });
  if (!outcome.ok) throw new Error('handshake refused');
  return outcome;
}

const client = (name: string): Identity => ({
  kind: 'client',
  client: { name, scopes: [], api_keys: [], allow_login: false, token_sha256: '0'.repeat(64), created_at: 0 } as unknown as ClientRecord,
});

it('the encoded answer of a successful handshake is the answer frame, per identity, with or without an id to echo', () => {
  for (const identity of [OWNER, client('box'), client('other'), OWNER, client('box')]) {
    for (const serverVersion of ['1.2.3', '2.0.0']) {
      const outcome = admitted(identity, serverVersion);
      for (const rawId of [undefined, 'h1', 7]) {
        expect(encodeHandshakeOk(rawId, outcome)).toEqual(encodeFrame(handshakeAnswerFrame(rawId, outcome)));
      }
    }
  }
  const box = JSON.parse(encodeHandshakeOk(undefined, admitted(client('box'))).subarray(4).toString()) as { data: { client: string; ops: string[] } };
  const owner = JSON.parse(encodeHandshakeOk(undefined, admitted(OWNER)).subarray(4).toString()) as { data: { client: string; ops: string[] } };
  expect(box.data.client).toBe('box');
  expect(owner.data.client).toBe('owner');
  // A client is told only its own ops, whichever identity connected before it.
  expect(owner.data.ops).toContain('client_add');
  expect(box.data.ops).not.toContain('client_add');
});
