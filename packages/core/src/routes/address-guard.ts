/**
 * Which upstream addresses a route may connect to (SPEC §6): never loopback, private, link-local
 * or otherwise non-public addresses reached through a name — no DNS rebinding into the host's
 * network — unless the route's upstream names such an address itself (a literal, or `localhost`).
 */
import net from 'node:net';

export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'carrier-grade NAT'
  | 'link-local'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

interface Range {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
  readonly kind: Exclude<AddressClass, 'public'>;
}

const RANGES: readonly Range[] = [
  { address: '0.0.0.0', prefix: 8, family: 'ipv4', kind: 'unspecified' },
  { address: '10.0.0.0', prefix: 8, family: 'ipv4', kind: 'private' },
  { address: '100.64.0.0', prefix: 10, family: 'ipv4', kind: 'carrier-grade NAT' },
  { address: '127.0.0.0', prefix: 8, family: 'ipv4', kind: 'loopback' },
  { address: '169.254.0.0', prefix: 16, family: 'ipv4', kind: 'link-local' },
  { address: '172.16.0.0', prefix: 12, family: 'ipv4', kind: 'private' },
  { address: '192.0.0.0', prefix: 24, family: 'ipv4', kind: 'reserved' },
  { address: '192.168.0.0', prefix: 16, family: 'ipv4', kind: 'private' },
  { address: '198.18.0.0', prefix: 15, family: 'ipv4', kind: 'reserved' },
  { address: '224.0.0.0', prefix: 4, family: 'ipv4', kind: 'multicast' },
  { address: '240.0.0.0', prefix: 4, family: 'ipv4', kind: 'reserved' },
  { address: '::', prefix: 128, family: 'ipv6', kind: 'unspecified' },
  { address: '::1', prefix: 128, family: 'ipv6', kind: 'loopback' },
  // IPv4-compatible (deprecated) addresses; the mapped ones (::ffff:0:0/96) are classified by
  // their IPv4 part, which BlockList does itself.
  { address: '::', prefix: 96, family: 'ipv6', kind: 'reserved' },
  { address: 'fc00::', prefix: 7, family: 'ipv6', kind: 'private' },
  { address: 'fe80::', prefix: 10, family: 'ipv6', kind: 'link-local' },
  { address: 'fec0::', prefix: 10, family: 'ipv6', kind: 'private' },
  { address: 'ff00::', prefix: 8, family: 'ipv6', kind: 'multicast' },
  { address: '2001:db8::', prefix: 32, family: 'ipv6', kind: 'reserved' },
];

// One BlockList per class, checked in table order (the first match names the rule).
const LISTS: ReadonlyArray<readonly [Exclude<AddressClass, 'public'>, net.BlockList]> = (() => {
  const byKind = new Map<Exclude<AddressClass, 'public'>, net.BlockList>();
  for (const r of RANGES) {
    let list = byKind.get(r.kind);
    if (!list) byKind.set(r.kind, (list = new net.BlockList()));
    list.addSubnet(r.address, r.prefix, r.family);
  }
  return [...byKind.entries()];
})();

/** The 8 16-bit groups of an IPv6 address (one net.isIPv6 accepts). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number);
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    text = text.slice(0, -dotted[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head = '', rest] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = [...parse(rest ?? ''), ...tail];
  if (rest === undefined) return [...left, ...right];
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The class of an IP address. IPv4-mapped IPv6 and NAT64 (64:ff9b::/96) addresses are
 * classified by the IPv4 address they carry. Not an IP address: 'reserved'.
 */
export function classifyAddress(address: string): AddressClass {
  const family = net.isIP(address);
  if (family === 0) return 'reserved';
  if (family === 6) {
    const g = ipv6Groups(address.toLowerCase());
    if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0) {
      return classifyAddress(`${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`);
    }
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [kind, list] of LISTS) {
    if (list.check(address, type)) return kind;
  }
  return 'public';
}

/** A URL hostname without the brackets of an IPv6 literal and without a final dot. */
export function bareHostname(hostname: string): string {
  let h = hostname.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.') && h.length > 1) h = h.slice(0, -1);
  return h;
}

/** `localhost`, 127.0.0.0/8 or ::1 (and their mapped forms): where plain http is allowed. */
export function isLoopbackHost(hostname: string): boolean {
  const h = bareHostname(hostname);
  return h === 'localhost' || (net.isIP(h) !== 0 && classifyAddress(h) === 'loopback');
}

/**
 * What addresses a route's connections may reach, decided by how its upstream names the host:
 * - an IP literal: that address, whatever it is (the owner wrote it; no lookup happens);
 * - `localhost`: loopback addresses only;
 * - any other name: public addresses only.
 */
export type AddressPolicy = 'literal' | 'loopback-only' | 'public-only';

export function addressPolicyFor(hostname: string): AddressPolicy {
  const h = bareHostname(hostname);
  if (net.isIP(h) !== 0) return 'literal';
  if (h === 'localhost') return 'loopback-only';
  return 'public-only';
}

/**
 * Why `address` may not be connected to for a host named `hostname`, or undefined when it may.
 * The message names the rule and the fix.
 */
export function refusedAddressReason(hostname: string, address: string): string | undefined {
  const policy = addressPolicyFor(hostname);
  const kind = classifyAddress(address);
  if (policy === 'literal') return undefined;
  if (policy === 'loopback-only') {
    if (kind === 'loopback') return undefined;
    return `localhost resolved to ${address}, which is not a loopback address — fix the resolver, or name the address in the route's upstream`;
  }
  if (kind === 'public') return undefined;
  return (
    `${bareHostname(hostname)} resolved to ${address}, a ${kind} address: a route reaches loopback, ` +
    `private and link-local addresses only when its upstream names that address itself ` +
    `(for example https://10.0.0.5:8443 or http://localhost:PORT) — no DNS rebinding into this host's network`
  );
}
