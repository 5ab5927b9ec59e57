/**
 * device_code (RFC 8628): the proxy itself polls the token endpoint in the background at the
 * server's interval, adds 5 s on slow_down, and stops on expired_token, access_denied or the
 * session's end. oauth_poll only reads the outcome.
 * @see RFC 8628 §3.4, §3.5
 */
import * as oauth from 'oauth4webapi';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { FlowFactory, FlowOutcome, LoginFlow } from './flow.js';
import { assertBrowserUrl, assertPrintable, describeUpstream, isTransient, oauthErrorCode } from './oauth-provider.js';

/** RFC 8628 §3.2: the default when the server sends no interval. */
export const DEFAULT_DEVICE_INTERVAL_SECONDS = 5;
export const SLOW_DOWN_INCREMENT_SECONDS = 5;

/** The `interval` an error answer carries (GitHub's slow_down), if any. */
function errorBodyInterval(err: unknown): number | undefined {
  if (!(err instanceof oauth.ResponseBodyError)) return undefined;
  const value = (err.cause as { interval?: unknown }).interval;
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 && n <= 3600 ? n : undefined;
}

export const deviceCodeFlow: FlowFactory = (provider, options): LoginFlow => {
  const name = provider.config.name;
  let interval = DEFAULT_DEVICE_INTERVAL_SECONDS;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let resolveOutcome!: (o: FlowOutcome) => void;
  const outcome = new Promise<FlowOutcome>((resolve) => (resolveOutcome = resolve));
  const controller = new AbortController();

  const finish = (o: FlowOutcome): void => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    controller.abort();
    resolveOutcome(o);
  };

  return {
    flowType: 'device_code',
    outcome,
    get interval() {
      return interval;
    },
    async start(signal) {
      const as = await provider.metadata(signal);
      if (!as.device_authorization_endpoint) {
        throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${name}: the provider has no device authorization endpoint — use another flow or set device_authorization_endpoint`);
      }
      const params: Record<string, string> = {};
      if (provider.config.scopes.length > 0) params.scope = provider.config.scopes.join(' ');
      let device: oauth.DeviceAuthorizationResponse;
      try {
        const response = await oauth.deviceAuthorizationRequest(as, provider.client, provider.clientAuth(), params, provider.http(signal));
        device = await oauth.processDeviceAuthorizationResponse(as, provider.client, response);
      } catch (err) {
        const code = isTransient(err) ? ErrorCode.UPSTREAM_UNAVAILABLE : ErrorCode.FLOW_INITIATION_FAILED;
        throw new ProxyError(code, `${name}: the device authorization request failed: ${describeUpstream(err, provider.secrets())}`);
      }
      assertBrowserUrl(device.verification_uri, name, 'verification_uri');
      if (device.verification_uri_complete !== undefined) assertBrowserUrl(device.verification_uri_complete, name, 'verification_uri_complete');
      assertPrintable(device.user_code, name, 'user_code');
      if (typeof device.interval === 'number' && device.interval > 0) interval = device.interval;
      const deviceCode = device.device_code;
      const deadline = Math.min(options.deadline, Date.now() + device.expires_in * 1000);

      const poll = async (): Promise<void> => {
        if (stopped) return;
        if (Date.now() >= deadline) {
          finish({ status: 'expired', code: ErrorCode.SESSION_EXPIRED, error: 'the device code expired before the login was approved' });
          return;
        }
        try {
          const response = await oauth.deviceCodeGrantRequest(as, provider.client, provider.clientAuth(), deviceCode, provider.http(controller.signal));
          const result = await oauth.processDeviceCodeResponse(as, provider.client, response);
          finish({ status: 'complete', token: provider.toStoredToken(result) });
          return;
        } catch (err) {
          if (stopped) return;
          switch (oauthErrorCode(err)) {
            case 'authorization_pending':
              break;
            case 'slow_down': {
              // RFC 8628 §3.5 adds 5 s; GitHub also sends the interval it wants now — whichever is longer.
              const asked = errorBodyInterval(err);
              interval = Math.max(interval + SLOW_DOWN_INCREMENT_SECONDS, asked ?? 0);
              break;
            }
            case 'access_denied':
              finish({ status: 'denied', code: ErrorCode.ACCESS_DENIED, error: 'the login was denied at the provider' });
              return;
            case 'expired_token':
              finish({ status: 'expired', code: ErrorCode.SESSION_EXPIRED, error: 'the device code expired before the login was approved' });
              return;
            default:
              if (!isTransient(err)) {
                finish({ status: 'failed', code: ErrorCode.EXCHANGE_FAILED, error: `the provider refused the device code: ${describeUpstream(err, [deviceCode, ...provider.secrets()])}` });
                return;
              }
            // Network trouble or 5xx: keep polling at the interval until the deadline.
          }
        }
        schedule();
      };
      const schedule = (): void => {
        if (stopped) return;
        timer = setTimeout(() => void poll(), Math.min(interval * 1000, Math.max(0, deadline - Date.now())));
      };
      schedule();

      const start: Awaited<ReturnType<LoginFlow['start']>> = {
        auth_url: device.verification_uri_complete ?? device.verification_uri,
        pollIntervalMs: Math.round(interval * 1000),
        user_code: device.user_code,
        verification_uri: device.verification_uri,
        expires_in: device.expires_in,
      };
      if (device.verification_uri_complete !== undefined) start.verification_uri_complete = device.verification_uri_complete;
      return start;
    },
    dispose() {
      finish({ status: 'failed', code: ErrorCode.CANCELLED, error: 'the login was cancelled' });
    },
  };
};
