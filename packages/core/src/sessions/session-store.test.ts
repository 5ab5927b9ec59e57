import { afterEach, describe, expect, it } from 'vitest';
import type { LoginFlow } from '../flows/flow.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { newSessionId, type Session, SessionStore } from './session-store.js';

let now = 1_000_000;
const clock = { now: () => now };
const stores: SessionStore[] = [];

function store(max = 10): SessionStore {
  const s = new SessionStore({ clock, maxSessions: max, sweepIntervalMs: 60_000, retentionMs: 1_000 });
  stores.push(s);
  return s;
}
afterEach(() => stores.splice(0).forEach((s) => s.close()));

function session(owner = 'owner', ttlMs = 10_000): Session & { disposed: () => number } {
  let disposed = 0;
  const flow: LoginFlow = { flowType: 'browser_redirect', start: async () => ({ auth_url: 'x', pollIntervalMs: 1 }), dispose: () => void disposed++ };
  const id = newSessionId();
  return Object.assign(
    { id, owner, provider: 'p', bucket: 'default', flowType: 'browser_redirect' as const, flow, initiated: { session_id: id, flow_type: 'browser_redirect' as const, auth_url: 'x', pollIntervalMs: 1, expires_at: 0 }, expiresAt: now + ttlMs, status: 'pending' as const, exchanging: false },
    { disposed: () => disposed },
  );
}

describe('SessionStore', () => {
  it('makes 128-bit hex ids', () => {
    const ids = new Set(Array.from({ length: 100 }, newSessionId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('binds a session to the identity that started it', () => {
    const s = store();
    const a = session('client:a');
    s.add(a);
    expect(s.get(a.id, 'client:a')).toBe(a);
    expect(() => s.get(a.id, 'client:b')).toThrow(expect.objectContaining({ code: ErrorCode.SESSION_NOT_FOUND }));
    expect(() => s.get(a.id, 'owner')).toThrow(ProxyError);
  });

  it('expires pending sessions on read and on sweep, disposing the flow', () => {
    const s = store();
    const a = session('owner', 100);
    const b = session('owner', 100);
    s.add(a);
    s.add(b);
    now += 200;
    expect(s.get(a.id, 'owner').status).toBe('expired');
    s.sweep();
    expect(b.status).toBe('expired');
    expect(a.disposed()).toBe(1);
    expect(s.pendingCount).toBe(0);
    now += 2_000;
    s.sweep();
    expect(() => s.get(a.id, 'owner')).toThrow(expect.objectContaining({ code: ErrorCode.SESSION_NOT_FOUND }));
  });

  it('caps pending sessions and frees a place when one finishes', () => {
    const s = store(2);
    const a = session();
    s.add(a);
    s.add(session());
    expect(() => s.add(session())).toThrow(expect.objectContaining({ code: ErrorCode.RESOURCE_EXHAUSTED }));
    s.finish(a, 'cancelled');
    expect(() => s.add(session())).not.toThrow();
  });

  it('finds a pending session of the same identity and account to join', () => {
    const s = store();
    const a = session('owner');
    s.add(a);
    expect(s.findPending('owner', 'p', 'default', 'browser_redirect')).toBe(a);
    expect(s.findPending('client:x', 'p', 'default', 'browser_redirect')).toBeUndefined();
    expect(s.findPending('owner', 'p', 'other', 'browser_redirect')).toBeUndefined();
    s.finish(a, 'complete');
    expect(s.findPending('owner', 'p', 'default', 'browser_redirect')).toBeUndefined();
  });
});
