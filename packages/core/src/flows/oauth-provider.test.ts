import { describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { describeUpstream, redactSecrets } from './oauth-provider.js';

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

describe('describeUpstream', () => {
  it('passes a provider\'s description on printable, one line, bounded, without the request\'s secrets', () => {
    const err = new oauth.ResponseBodyError('server responded with an error in the response body', {
      cause: { error: 'invalid_grant', error_description: `token rt-secret-123456 \u001b[2J\nFAKE log line\r${'x'.repeat(2000)}` },
      response: new Response(null, { status: 400 }),
    });
    const text = describeUpstream(err, ['rt-secret-123456']);
    expect(text).toMatch(/^invalid_grant: token \[redacted\] /);
    expect(text).not.toMatch(/[\u0000-\u001f]/);
    expect(text.length).toBeLessThanOrEqual(501);
  });
});
