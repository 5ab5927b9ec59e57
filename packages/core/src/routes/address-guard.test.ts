import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { addressPolicyFor, classifyAddress, isLoopbackHost, refusedAddressReason } from './address-guard.js';
import { BlockedAddressError, guardedLookup, type LookupFunction } from './upstream.js';

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['::ffff:192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.127.255.255', 'carrier-grade NAT'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::127.0.0.1', 'reserved'],
    ['not-an-ip', 'reserved'],
    ['8.8.8.8', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['192.169.0.1', 'public'],
    ['2606:4700::1111', 'public'],
    ['64:ff9b::808:808', 'public'],
    ['::ffff:8.8.8.8', 'public'],
  ])('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });
});

describe('address policy', () => {
  it('lets a literal upstream reach its own address, localhost only loopback, names only public addresses', () => {
    expect(addressPolicyFor('10.0.0.5')).toBe('literal');
    expect(addressPolicyFor('[::1]')).toBe('literal');
    expect(addressPolicyFor('localhost')).toBe('loopback-only');
    expect(addressPolicyFor('LOCALHOST.')).toBe('loopback-only');
    expect(addressPolicyFor('api.example.com')).toBe('public-only');
    expect(refusedAddressReason('10.0.0.5', '10.0.0.5')).toBeUndefined();
    expect(refusedAddressReason('localhost', '127.0.0.1')).toBeUndefined();
    expect(refusedAddressReason('localhost', '::1')).toBeUndefined();
    expect(refusedAddressReason('localhost', '10.0.0.1')).toMatch(/not a loopback address/);
    expect(refusedAddressReason('api.example.com', '8.8.8.8')).toBeUndefined();
    expect(refusedAddressReason('rebind.example', '127.0.0.1')).toMatch(
      /rebind\.example resolved to 127\.0\.0\.1, a loopback address: .*no DNS rebinding into this host's network/,
    );
    expect(refusedAddressReason('meta.example', '169.254.169.254')).toMatch(/a link-local address/);
    expect(isLoopbackHost('127.0.0.2')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
    expect(isLoopbackHost('localhost.example.com')).toBe(false);
  });
});

describe('guardedLookup', () => {
  const resolver =
    (table: Record<string, LookupAddress[]>): LookupFunction =>
    (hostname, _options, callback) => {
      const found = table[hostname];
      if (!found) return callback(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }), '', 0);
      (callback as (err: null, a: LookupAddress[]) => void)(null, found);
    };
  const lookup = guardedLookup(
    resolver({
      'public.example': [{ address: '8.8.8.8', family: 4 }],
      'rebind.example': [{ address: '127.0.0.1', family: 4 }],
      'mixed.example': [
        { address: '8.8.8.8', family: 4 },
        { address: '10.0.0.1', family: 4 },
      ],
      localhost: [{ address: '127.0.0.1', family: 4 }],
    }),
  );
  const ask = (host: string, all: boolean): Promise<unknown> =>
    new Promise((resolve, reject) =>
      lookup(host, { all }, (err, address, family) => (err ? reject(err) : resolve(all ? address : { address, family }))),
    );

  it('answers allowed addresses in both shapes net.connect asks for', async () => {
    await expect(ask('public.example', false)).resolves.toEqual({ address: '8.8.8.8', family: 4 });
    await expect(ask('public.example', true)).resolves.toEqual([{ address: '8.8.8.8', family: 4 }]);
    await expect(ask('localhost', false)).resolves.toEqual({ address: '127.0.0.1', family: 4 });
  });

  it('refuses a name that resolves to a non-public address, even one among several', async () => {
    await expect(ask('rebind.example', false)).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(ask('rebind.example', true)).rejects.toThrow(/a loopback address/);
    await expect(ask('mixed.example', true)).rejects.toThrow(/10\.0\.0\.1, a private address/);
    await expect(ask('nowhere.example', false)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});
