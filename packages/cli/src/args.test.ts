import { describe, expect, it } from 'vitest';
import { assertEnvName, parseAccountSpec, parseDuration, parseSeconds } from './args.js';
import { UsageError } from './exit-codes.js';

describe('parseDuration', () => {
  it.each([
    ['90s', 90],
    ['30m', 1800],
    ['12h', 43_200],
    ['7d', 604_800],
    ['45', 45],
    [' 2h ', 7200],
  ])('%s → %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '0', '0s', '5w', '1.5h', '-3', 'h', '12 h', '1e3', '99999999999999999999d'])('refuses %j as a usage error', (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
    expect(() => parseDuration(text)).toThrow(/90s, 30m, 12h, 7d/);
  });
});

describe('parseSeconds', () => {
  it('takes whole seconds, zero included', () => {
    expect(parseSeconds('0', '--min-valid')).toBe(0);
    expect(parseSeconds('300', '--min-valid')).toBe(300);
  });
  it.each(['-1', '1.5', 'abc', ''])('refuses %j naming the option', (text) => {
    expect(() => parseSeconds(text, '--min-valid')).toThrow(/--min-valid takes a whole number/);
  });
});

describe('parseAccountSpec', () => {
  it('splits PROVIDER[:BUCKET]', () => {
    expect(parseAccountSpec('github')).toEqual({ provider: 'github' });
    expect(parseAccountSpec('github:work')).toEqual({ provider: 'github', bucket: 'work' });
  });
  it.each(['', ':work', 'github:', 'a:b:c'])('refuses %j', (text) => {
    expect(() => parseAccountSpec(text)).toThrow(UsageError);
  });
});

describe('assertEnvName', () => {
  it('accepts shell variable names and refuses others', () => {
    expect(assertEnvName('ACCESS_TOKEN')).toBe('ACCESS_TOKEN');
    expect(assertEnvName('_x1')).toBe('_x1');
    for (const bad of ['1X', 'A-B', '', 'A B', 'A=B']) expect(() => assertEnvName(bad)).toThrow(UsageError);
  });
});
