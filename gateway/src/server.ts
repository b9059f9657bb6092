import * as http from "node:http";
import { BHATTI_VERSION, type Logger, type ServerConfig, requestContextInterceptor } from "@bhatti/runtime";
import { createContextValues } from "@connectrpc/connect";
import { createApiKeyAuthenticator } from "./auth/api-key-authenticator.js";
import { createRequestAuth } from "./auth/request-auth.js";
import { createStoreApiKeyLookup } from "./auth/store-api-key-lookup.js";
import { createBoundedConnectHandler } from "./connect/bounded-connect-handler.js";
import { createForwardManager } from "./forward/forward-manager.js";
import { createIpRateLimiter } from "./limits/ip-rate-limiter.js";
import { createAuthInterceptor, remoteAddressKey } from "./connect/auth-interceptor.js";
import { registerConnectServices } from "./connect/routes.js";
import type { GatewayContext } from "./gateway-context.js";
import { type RestRouter, createRestRouter } from "./rest/router.js";
import { registerRestRoutes } from "./rest/routes.js";
import { createShareManager } from "./share/share-manager.js";
import { checkProxyConfig, createProxyListener } from "./proxy/proxy-listener.js";
import { proxyRuntimeOf } from "./proxy/proxy-runtime.js";
import { createSandboxRuntime } from "./sandbox-runtime.js";
import { type ServiceClients, createServiceClients } from "./service-clients.js";
import { registerWebSocketRoutes } from "./ws/websocket-routes.js";

export interface Gateway {
  readonly context: GatewayContext;
  /** The HTTP/1.1 server (not yet listening); WebSocket handlers attach to its `upgrade` event. */
  readonly server: http.Server;
  /** The REST router (routes are registered from rest/routes.ts; tests may add their own). */
  readonly rest: RestRouter;
  /** The public proxy listener (`proxy_listen`), not yet listening; undefined when not configured. */
  readonly proxyServer: http.Server | undefined;
  /** Stops accepting requests, ends idle keep-alive connections and closes the service clients it dialed. */
  close(): Promise<void>;
}

export interface GatewayOptions {
  /**
   * The internal services' clients (tests pass in-memory fakes made with `createRouterTransport`).
   * Injected clients stay the caller's to close; by default the gateway dials the Unix sockets
   * under `socket_dir` and closes them itself.
   */
  clients?: ServiceClients;
}

/**
 * The public gateway: the Connect API (what the CLI uses) and the REST API on one HTTP/1.1
 * server, so curl and browsers work. Connect procedures are matched first; every other
 * path goes to the REST router.
 */
export function createGateway(config: ServerConfig, logger: Logger, options: GatewayOptions = {}): Gateway {
  checkProxyConfig(config);
  const ownsClients = options.clients === undefined;
  const clients = options.clients ?? createServiceClients(config);
  const auth = createRequestAuth(createApiKeyAuthenticator(createStoreApiKeyLookup(clients)), {
    unauthenticatedLimiter: createIpRateLimiter({
      capacity: config.rate_unauthenticated_burst,
      perMinute: config.rate_unauthenticated_per_minute,
    }),
  });
  const runtime = createSandboxRuntime(clients, config, logger);
  const forwards = createForwardManager({
    wake: runtime.wake,
    clients,
    logger: logger.child({ component: "forward" }),
    bindAddress: config.forward_bind_address,
  });
  const context: GatewayContext = {
    config,
    logger,
    clients,
    auth,
    runtime,
    publicProcedures: new Set(),
    forwards,
    shares: createShareManager({ config, runtime, clients, logger: logger.child({ component: "share" }) }),
  };
  const rest = createRestRouter(context);
  registerRestRoutes(rest, context);
  const connect = createBoundedConnectHandler(context, {
    routes: (router) => registerConnectServices(router, context),
    interceptors: [requestContextInterceptor(logger), createAuthInterceptor(auth, context.publicProcedures)],
    contextValues: (req) => createContextValues().set(remoteAddressKey, req.socket.remoteAddress ?? ""),
    fallback: (req, res) => void rest.handle(req as http.IncomingMessage, res as http.ServerResponse),
  });
  // Published ports (Host `<alias>.<proxy_zone>`, `/sandboxes/:id/proxy/:port/*`) go to the
  // proxy before the API; their responses are the app's own.
  const { preview } = proxyRuntimeOf(context);
  const server = http.createServer((req, res) => {
    if (preview.claims(req, "api")) return preview.handle(req, res, "api");
    res.setHeader("X-Bhatti-Version", BHATTI_VERSION);
    connect(req, res);
  });
  const websockets = registerWebSocketRoutes(server, context);
  // The same for WebSocket upgrades: the API's upgrade listeners only see what the proxy leaves.
  const apiUpgrades = server.listeners("upgrade") as ((...args: unknown[]) => void)[];
  server.removeAllListeners("upgrade");
  server.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) => {
    if (preview.claims(req, "api")) return preview.upgrade(req, socket, head, "api");
    for (const listener of apiUpgrades) listener.call(server, req, socket, head);
  });
  const proxyServer = config.proxy_listen === "" ? undefined : createProxyListener(config, preview, logger);
  let closing: Promise<void> | undefined;
  return {
    context,
    server,
    rest,
    proxyServer,
    close() {
      closing ??= new Promise<void>((resolve) => {
        websockets.close();
        void forwards.closeAll();
        context.shares.close();
        preview.close();
        runtime.close();
        proxyServer?.close();
        proxyServer?.closeIdleConnections();
        server.close(() => resolve());
        server.closeIdleConnections();
        // Connections still busy after a grace period are cut so shutdown is bounded.
        setTimeout(() => {
          server.closeAllConnections();
          proxyServer?.closeAllConnections();
        }, 2_000).unref();
      }).finally(() => {
        if (ownsClients) clients.close();
      });
      return closing;
    },
  };
}
