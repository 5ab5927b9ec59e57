import { describe, expect, it } from 'vitest';
import { closestNames, didYouMean, editDistance } from './suggest.js';

describe('did you mean', () => {
  it('measures edits, transpositions included', () => {
    expect(editDistance('demo', 'demoo')).toBe(1);
    expect(editDistance('openai', 'openia')).toBe(1);
    expect(editDistance('github', 'gitlab')).toBe(2);
    expect(editDistance('github', 'zzzzzzzzz')).toBeGreaterThan(3);
  });

  it('picks close names, closest first, and nothing far away', () => {
    expect(closestNames('demoo', ['demo', 'demo-device', 'github'])).toEqual(['demo']);
    expect(closestNames('dem', ['demo', 'demo-device'])).toEqual(['demo', 'demo-device']);
    expect(closestNames('gh', ['github', 'gitlab'])).toEqual([]);
    expect(closestNames('gitlab', ['github'])).toEqual([]);
    expect(closestNames('GitHub', ['github'])).toEqual(['github']);
  });

  it('says what exists when nothing is close', () => {
    expect(didYouMean('x', [], 'provider', 'credproxy provider list')).toBe(' — there are no providers yet');
    expect(didYouMean('zzzz', ['a1', 'b2'], 'provider', 'credproxy provider list')).toBe(' — the providers are: a1, b2 (`credproxy provider list`)');
  });
});
