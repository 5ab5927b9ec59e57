import { describe, expect, it } from 'vitest';
import { discoveryUrls, formatChecks } from './doctor.js';

describe('doctor', () => {
  it('looks for discovery where OIDC and RFC 8414 put it, for issuers with and without a path', () => {
    expect(discoveryUrls('https://as.example.com')).toEqual([
      'https://as.example.com/.well-known/openid-configuration',
      'https://as.example.com/.well-known/oauth-authorization-server',
    ]);
    expect(discoveryUrls('https://as.example.com/tenant/v2/')).toEqual([
      'https://as.example.com/tenant/v2/.well-known/openid-configuration',
      'https://as.example.com/.well-known/oauth-authorization-server/tenant/v2',
    ]);
  });

  it('prints one line per check, FAIL in capitals, the fix under what is not ok, and a count', () => {
    const text = formatChecks([
      { name: 'proxy', status: 'ok', detail: 'answers' },
      { name: 'data-dir', status: 'fail', detail: '/d is mode 0755', fix: '`chmod 700 /d`' },
      { name: 'keyring', status: 'warn', detail: 'none', fix: 'set CREDPROXY_KEY_FILE' },
    ]);
    expect(text).toBe(
      'ok    proxy     answers\n' +
        'FAIL  data-dir  /d is mode 0755\n' +
        '      fix: `chmod 700 /d`\n' +
        'warn  keyring   none\n' +
        '      fix: set CREDPROXY_KEY_FILE\n' +
        '\n1 problem(s), 1 warning(s)\n',
    );
  });
});
