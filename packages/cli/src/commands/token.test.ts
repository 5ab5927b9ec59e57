import { describe, expect, it } from 'vitest';
import { parseTokenArgs } from './token.js';

describe('parseTokenArgs (the fast path that skips commander)', () => {
  it.each([
    [['gh'], { provider: 'gh' }],
    [['gh', '--json'], { provider: 'gh', json: true }],
    [['--bucket', 'work', 'gh'], { provider: 'gh', bucket: 'work' }],
    [['gh', '--bucket=work', '--min-valid', '300', '--socket', '/tmp/s'], { provider: 'gh', bucket: 'work', minValid: 300, socket: '/tmp/s' }],
    [['gh', '--min-valid=0'], { provider: 'gh', minValid: 0 }],
  ])('%j', (args, expected) => {
    expect(parseTokenArgs(args)).toEqual(expected);
  });

  it.each([
    [[]],
    [['--help']],
    [['gh', '-h']],
    [['gh', 'extra']],
    [['gh', '--bucket']],
    [['gh', '--bucket', '--json']],
    [['gh', '--min-valid', 'soon']],
    [['gh', '--json=yes']],
    [['gh', '--unknown']],
    [['--', 'gh']],
  ])('leaves %j to commander', (args) => {
    expect(parseTokenArgs(args)).toBeUndefined();
  });
});
