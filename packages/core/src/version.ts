/** The credproxy version, shown in `ping` and the handshake's `server` field. */
export const CREDPROXY_VERSION = '0.1.0';
