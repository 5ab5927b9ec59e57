/**
 * Every encoding of a secret SPEC §6 names — as sent, percent-encoded (either case, `+` for
 * space), JSON-escaped, base64 and base64url at each of the three alignments it can start at
 * inside a longer encoded text — computed here, independently of the proxy's scrubber, for the
 * tests that scan bytes for leaks.
 */
export function secretForms(secret: string): string[] {
  const bytes = Buffer.from(secret);
  const out = [
    secret,
    encodeURIComponent(secret),
    encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    encodeURIComponent(secret).replace(/%20/g, '+'),
    JSON.stringify(secret).slice(1, -1),
  ];
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k, 0x41), bytes]).toString('base64');
    const fragment = enc.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
    out.push(fragment, fragment.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...new Set(out)];
}
