import { accessSync, constants, mkdirSync } from "node:fs";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { ConfigError, type ServerConfig, loadConfig } from "./config.js";
import { startConnectServer } from "./connect-server.js";
import { createLogger, type Logger } from "./logger.js";
import { installProcessFaultPolicy } from "./process-faults.js";
import { type ServiceName, serviceSocketPath } from "./service-paths.js";
import { type ShutdownController, installShutdown } from "./shutdown.js";
import { SocketInUseError } from "./unix-socket.js";

export interface ServiceContext {
  readonly name: ServiceName;
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly shutdown: ShutdownController;
}

/** A service's Connect routes and the server interceptors that apply to them. */
export interface ServiceRoutes {
  routes: (router: ConnectRouter) => void;
  interceptors?: readonly Interceptor[];
}

export interface ServiceDefinition {
  name: ServiceName;
  /** Builds the service (opening what it owns) and returns its Connect routes (and interceptors). */
  setup(ctx: ServiceContext): Promise<((router: ConnectRouter) => void) | ServiceRoutes>;
}

/** A fatal start-up problem: printed as one clear line, exit code 1. */
export class StartupError extends Error {
  override readonly name = "StartupError";
}

/** Creates the directory if needed and checks that this process can write to it. */
export function ensureWritableDir(path: string, what: string, mode = 0o755): void {
  try {
    mkdirSync(path, { recursive: true, mode });
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new StartupError(
      `${what} ${path} is not writable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/**
 * The main function of every service process: configuration, logging, the Connect server
 * on `<socket_dir>/<name>.sock`, and graceful shutdown on SIGTERM.
 */
export async function runService(definition: ServiceDefinition, argv = process.argv.slice(2)): Promise<void> {
  let config: ServerConfig;
  try {
    const loaded = loadConfig({ argv });
    if (loaded.rest.length > 0) throw new ConfigError(`unknown argument: ${loaded.rest.join(" ")}`);
    config = loaded.config;
  } catch (e) {
    process.stderr.write(`bhatti ${definition.name}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger({ service: definition.name, level: config.log_level });
  installProcessFaultPolicy(logger);
  const shutdown = installShutdown(logger, config.shutdown_timeout);
  try {
    ensureWritableDir(config.state_dir, "state dir", 0o700);
    ensureWritableDir(config.socket_dir, "socket dir");
    const served = await definition.setup({ name: definition.name, config, logger, shutdown });
    const { routes, interceptors = [] } = typeof served === "function" ? { routes: served } : served;
    const server = await startConnectServer({
      socketPath: serviceSocketPath(config.socket_dir, definition.name),
      routes,
      logger,
      interceptors,
    });
    shutdown.add(() => server.close());
  } catch (e) {
    const known = e instanceof StartupError || e instanceof SocketInUseError || e instanceof ConfigError;
    logger.error("failed to start", { error: known ? (e as Error).message : e });
    process.stderr.write(`bhatti ${definition.name}: ${(e as Error).message}\n`);
    await shutdown.shutdown("startup failed");
    process.exit(1);
  }
}
