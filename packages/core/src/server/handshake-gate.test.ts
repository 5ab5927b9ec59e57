import { expect, it } from 'vitest';
import { peerKey } from './handshake-gate.js';

it('keys a peer by pid, else uid; pid 0 (a peer in another pid namespace) is no pid', () => {
  expect(peerKey({ pid: 1234, uid: 1000 })).toBe('pid:1234');
  expect(peerKey({ pid: 0, uid: 1000 })).toBe('uid:1000');
  expect(peerKey({ uid: 1000 })).toBe('uid:1000');
  expect(peerKey({ pid: 0 })).toBe('unknown');
  expect(peerKey({})).toBe('unknown');
});
