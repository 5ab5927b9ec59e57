// The test authorization server in its own process, so a test can kill -9 it and start it again
// on the same port with the same state (startTestAuthServer's `stateFile`).
//
// argv[2]: JSON options — every TestAuthServerOptions field that is plain data (stateFile, port,
// accessTokenTtl, rotateRefreshToken, ...) plus
//   holdRefreshMs: hold every refresh_token grant request this long before the real token
//                  endpoint answers it (a kill during the hold is a server dying mid-refresh).
//
// stdout, one JSON object per line:
//   {"event":"ready","pid":…,"issuer":…,"port":…,"restored":…,"clients":{…}}  once listening
//   {"event":"held","grantType":…,"attempt":…,"delayMs":…}                     a token request is being held
//   {"event":"token","grantType":…,"status":…}                                 a token request was answered
// SIGTERM closes the server and exits 0.
import { startTestAuthServer } from '@credproxy/testkit';

const { holdRefreshMs, ...options } = JSON.parse(process.argv[2] ?? '{}');
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

const server = await startTestAuthServer({
  ...options,
  ...(holdRefreshMs
    ? {
        failTokenEndpoint(req) {
          if (req.countedAs !== 'refresh_token') return undefined;
          emit({ event: 'held', grantType: req.grantType, attempt: req.attempt, delayMs: holdRefreshMs });
          return { passThrough: true, delayMs: holdRefreshMs };
        },
      }
    : {}),
  onRequest(record) {
    if (record.path === '/token') emit({ event: 'token', grantType: record.grantType, status: record.status });
  },
});

emit({
  event: 'ready',
  pid: process.pid,
  issuer: server.issuer,
  port: server.port,
  restored: server.restored,
  clients: server.clients,
});

process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
