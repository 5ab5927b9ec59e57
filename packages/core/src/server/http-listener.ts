/**
 * A client's HTTP listener (SPEC §6, `client add --http ADDR`): node:http on a Unix socket (0600,
 * in a directory checked like the socket directory) or on a loopback port. It serves one client
 * and knows it; the routes handler it mounts does the rest.
 */
import { promises as fs } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { formatHttpAddress, HTTP_LISTENER_MAX_CONNECTIONS, type HttpAddress } from './http-address.js';
import { createRouteServer, mountRouteHandler, type RouteRequestHandler } from '../routes/index.js';
import { ensurePrivateDir } from '../util/fs-secure.js';
import type { Logger } from '../util/logger.js';
import type { PeerInfo } from './context.js';
import { clearStaleSocket, type HostedListener } from './listener-host.js';
import { peerKey } from './handshake-gate.js';
import type { PeerCredentialReader } from './peer-credentials.js';

export interface HttpListenerOptions {
  address: HttpAddress;
  clientName: string;
  /** The handler, made once the bound address is known (its messages name it). */
  makeHandler(listener: { url: string; peerKey(req: IncomingMessage): string }): RouteRequestHandler;
  readPeer: PeerCredentialReader;
  logger: Logger;
}

export class HttpListener implements HostedListener {
  readonly kind = 'http';
  readonly clientName: string;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #bound: HttpAddress;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, bound: HttpAddress, clientName: string) {
    this.#server = server;
    this.#bound = bound;
    this.clientName = clientName;
  }

  /** Where it listens: the socket path, or `127.0.0.1:PORT` with the port actually bound. */
  get address(): string {
    return formatHttpAddress(this.#bound);
  }

  /** How clients reach it, for messages: `http://127.0.0.1:PORT`, or `http://localhost` on a socket. */
  get url(): string {
    return this.#bound.kind === 'unix' ? 'http://localhost' : `http://${formatHttpAddress(this.#bound)}`;
  }

  static async open(options: HttpListenerOptions): Promise<HttpListener> {
    const { address } = options;
    if (address.kind === 'unix') {
      // The directory is the guard of a Unix socket, as for the owner socket.
      await ensurePrivateDir(path.dirname(address.path));
      await clearStaleSocket(address.path);
    }
    const server = createRouteServer();
    server.maxConnections = HTTP_LISTENER_MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void => {
        const where = formatHttpAddress(address);
        const hint = err.code === 'EADDRINUSE' ? 'something else listens there — choose another port, or 0 to pick one' : 'check the address';
        reject(new ProxyError(ErrorCode.INVALID_REQUEST, `cannot listen on ${where} (${err.code ?? err.message}) — ${hint}`, { cause: err }));
      };
      server.once('error', fail);
      const done = (): void => {
        server.off('error', fail);
        resolve();
      };
      if (address.kind === 'unix') server.listen(address.path, done);
      else server.listen({ host: address.host, port: address.port, exclusive: true }, done);
    });
    let bound: HttpAddress = address;
    if (address.kind === 'tcp') bound = { ...address, port: (server.address() as AddressInfo).port };
    else {
      try {
        await fs.chmod(address.path, 0o600);
      } catch (err) {
        server.close();
        await fs.unlink(address.path).catch(() => undefined);
        throw err;
      }
    }
    const listener = new HttpListener(server, bound, options.clientName);
    server.on('connection', (socket: Socket) => {
      listener.#sockets.add(socket);
      socket.once('close', () => listener.#sockets.delete(socket));
    });
    server.on('error', (err) => options.logger.log('error', `http listener ${listener.address}: ${err.message}`, { client: options.clientName }));

    // Rate-limit key of a peer: the pid the kernel reports on a Unix socket, the remote address on TCP.
    const peers = new WeakMap<Socket, string>();
    const keyOf = (req: IncomingMessage): string => {
      const socket = req.socket;
      let key = peers.get(socket);
      if (key === undefined) {
        if (bound.kind === 'unix') {
          let peer: PeerInfo = {};
          try {
            peer = options.readPeer(socket);
          } catch {
            peer = {};
          }
          key = peerKey(peer);
        } else {
          key = `addr:${socket.remoteAddress ?? 'unknown'}`;
        }
        peers.set(socket, key);
      }
      return key;
    };
    mountRouteHandler(server, options.makeHandler({ url: listener.url, peerKey: keyOf }));
    return listener;
  }

  /** Stop listening, cut every connection (the client is gone), remove the socket file. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const socket of this.#sockets) socket.destroy();
      await closed;
      if (this.#bound.kind === 'unix') await fs.unlink(this.#bound.path).catch(() => undefined);
    })();
    return this.#closing;
  }
}
