import { describe, expect, it } from 'vitest';
import { redactSecrets } from './oauth-provider.js';

describe('redactSecrets', () => {
  const refresh = 'rt+/=secret value&1';

  it('takes a secret out as sent, percent-encoded and form-encoded', () => {
    const quoted = `bad token ${refresh}; as sent: ${encodeURIComponent(refresh)}; in the form: ${new URLSearchParams({ refresh_token: refresh }).toString()}`;
    const out = redactSecrets(quoted, [refresh]);
    expect(out).not.toContain(refresh);
    expect(out).not.toContain(encodeURIComponent(refresh));
    expect(out).not.toContain(new URLSearchParams({ v: refresh }).toString().slice(2));
    expect(out).toBe('bad token [redacted]; as sent: [redacted]; in the form: refresh_token=[redacted]');
  });

  it('leaves text without secrets, and values too short to be secrets, alone', () => {
    expect(redactSecrets('invalid_grant: the token expired', [refresh, undefined])).toBe('invalid_grant: the token expired');
    expect(redactSecrets('the code abc is bad', ['abc'])).toBe('the code abc is bad');
  });
});
