import { afterEach, describe, expect, it } from 'vitest';
import type { LoginFlow } from '../flows/flow.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { FlowType } from '../protocol/ops.js';
import { loopbackListenerBudget, MAX_LOOPBACK_LISTENERS, newSessionId, OWNER_SESSION_KEY, type Session, SessionStore } from './session-store.js';

let now = 1_000_000;
const clock = { now: () => now };
const stores: SessionStore[] = [];

function store(max = 10, limits = {}): SessionStore {
  const s = new SessionStore({ clock, maxSessions: max, sweepIntervalMs: 60_000, retentionMs: 1_000, limits });
  stores.push(s);
  return s;
}
afterEach(() => stores.splice(0).forEach((s) => s.close()));

function session(owner = 'owner', ttlMs = 10_000, flowType: FlowType = 'browser_redirect'): Session & { disposed: () => number } {
  let disposed = 0;
  const flow: LoginFlow = { flowType, start: async () => ({ auth_url: 'x', pollIntervalMs: 1 }), dispose: () => void disposed++ };
  const id = newSessionId();
  return Object.assign(
    { id, owner, provider: 'p', bucket: 'default', flowType, flow, initiated: { session_id: id, flow_type: flowType, auth_url: 'x', pollIntervalMs: 1, expires_at: 0 }, expiresAt: now + ttlMs, status: 'pending' as const, exchanging: false },
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

  it('caps pending logins per client registration, counting places reserved for logins still starting', () => {
    const s = store(100, { perClient: 2 });
    const r1 = s.reserve('client:a', 'device_code');
    s.reserve('client:a', 'browser_redirect');
    expect(() => s.reserve('client:a', 'browser_redirect')).toThrow(expect.objectContaining({ code: ErrorCode.RESOURCE_EXHAUSTED, message: expect.stringMatching(/2 logins pending/) }));
    // Another client, and the owner, are not held back by client a.
    expect(() => s.reserve('client:b', 'browser_redirect')).not.toThrow();
    expect(() => s.reserve(OWNER_SESSION_KEY, 'browser_redirect')).not.toThrow();
    s.release(r1);
    s.release(r1);
    expect(s.pendingOf('client:a')).toBe(1);
    const a = session('client:a', 10_000, 'device_code');
    s.add(a, s.reserve('client:a', 'device_code'));
    expect(() => s.reserve('client:a', 'pkce_redirect')).toThrow(expect.objectContaining({ code: ErrorCode.RESOURCE_EXHAUSTED }));
    s.finish(a, 'cancelled');
    expect(s.pendingOf('client:a')).toBe(1);
    expect(s.pendingCount).toBe(3);
  });

  it("caps the owner's logins that hold a listener or poller, not its paste logins", () => {
    const s = store(100, { perOwnerHolding: 2 });
    s.reserve(OWNER_SESSION_KEY, 'pkce_redirect');
    s.reserve(OWNER_SESSION_KEY, 'device_code');
    expect(() => s.reserve(OWNER_SESSION_KEY, 'device_code')).toThrow(expect.objectContaining({ code: ErrorCode.RESOURCE_EXHAUSTED }));
    for (let i = 0; i < 10; i++) s.reserve(OWNER_SESSION_KEY, 'browser_redirect');
    expect(s.pendingOf(OWNER_SESSION_KEY)).toBe(12);
  });

  it('bounds loopback listeners and device pollers over all identities together', () => {
    const s = store(100, { loopbackListeners: 2, devicePollers: 1 });
    s.reserve('client:a', 'pkce_redirect');
    s.reserve('client:b', 'pkce_redirect');
    expect(() => s.reserve(OWNER_SESSION_KEY, 'pkce_redirect')).toThrow(expect.objectContaining({ message: expect.stringMatching(/loopback listener/) }));
    s.reserve('client:c', 'device_code');
    expect(() => s.reserve('client:d', 'device_code')).toThrow(expect.objectContaining({ code: ErrorCode.RESOURCE_EXHAUSTED }));
    expect(() => s.reserve('client:d', 'browser_redirect')).not.toThrow();
  });

  it("endSessionsOf ends an identity's pending logins, forgets them, and revokes places being reserved", () => {
    const s = store();
    const a = session('client:a', 10_000, 'device_code');
    const other = session('client:b');
    s.add(a);
    s.add(other);
    const starting = s.reserve('client:a', 'pkce_redirect');
    expect(s.endSessionsOf('client:a')).toBe(1);
    expect(a.status).toBe('cancelled');
    expect(a.disposed()).toBe(1);
    expect(() => s.get(a.id, 'client:a')).toThrow(expect.objectContaining({ code: ErrorCode.SESSION_NOT_FOUND }));
    expect(s.pendingOf('client:a')).toBe(0);
    expect(s.pendingCount).toBe(1);
    // The login that was starting meanwhile cannot become a session; releasing it changes nothing.
    const late = session('client:a', 10_000, 'pkce_redirect');
    expect(() => s.add(late, starting)).toThrow(expect.objectContaining({ code: ErrorCode.CANCELLED }));
    s.release(starting);
    expect(s.pendingCount).toBe(1);
    expect(s.get(other.id, 'client:b').status).toBe('pending');
  });

  it('fits the loopback listener budget under the open-files limit', () => {
    expect(loopbackListenerBudget(undefined)).toBe(MAX_LOOPBACK_LISTENERS);
    expect(loopbackListenerBudget(Number.POSITIVE_INFINITY)).toBe(MAX_LOOPBACK_LISTENERS);
    expect(loopbackListenerBudget(1024)).toBe(16);
    expect(loopbackListenerBudget(1400)).toBe(Math.floor((1400 - 64 - 1024) / 2));
    expect(loopbackListenerBudget(65_536)).toBe(MAX_LOOPBACK_LISTENERS);
  });
});
