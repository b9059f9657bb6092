import {
  ConfigError,
  type ServerConfig,
  createLogger,
  installProcessFaultPolicy,
  installShutdown,
  loadConfig,
  parseListenAddress,
} from "@bhatti/runtime";
import { createGateway } from "./server.js";

// The gateway process: the public REST + Connect API on `listen` (HTTP/1.1).
let config: ServerConfig;
try {
  const loaded = loadConfig({ argv: process.argv.slice(2) });
  if (loaded.rest.length > 0) throw new ConfigError(`unknown argument: ${loaded.rest.join(" ")}`);
  config = loaded.config;
} catch (e) {
  process.stderr.write(`bhatti gateway: ${(e as Error).message}\n`);
  process.exit(2);
}

const logger = createLogger({ service: "gateway", level: config.log_level });
installProcessFaultPolicy(logger);
const shutdown = installShutdown(logger, config.shutdown_timeout);
try {
  const address = parseListenAddress(config.listen);
  const gateway = createGateway(config, logger);
  shutdown.add(() => gateway.close());
  await new Promise<void>((resolve, reject) => {
    gateway.server.once("error", reject);
    gateway.server.listen(address.port, address.host, () => {
      gateway.server.off("error", reject);
      resolve();
    });
  });
  logger.info("serving", { listen: config.listen });
  const proxyServer = gateway.proxyServer;
  if (proxyServer !== undefined) {
    const proxyAddress = parseListenAddress(config.proxy_listen);
    await new Promise<void>((resolve, reject) => {
      // Named after proxy_listen (the catch below speaks of `listen`).
      const failed = (e: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${config.proxy_listen} (proxy_listen): ${e.code ?? e.message}`));
      proxyServer.once("error", failed);
      proxyServer.listen(proxyAddress.port, proxyAddress.host, () => {
        proxyServer.off("error", failed);
        resolve();
      });
    });
    logger.info("serving published ports", { proxy_listen: config.proxy_listen, tls: config.proxy_tls });
  }
} catch (e) {
  const err = e as NodeJS.ErrnoException;
  const message =
    err.code === "EADDRINUSE"
      ? `cannot listen on ${config.listen}: address already in use (choose another "listen" address)`
      : err.code === "EACCES"
        ? `cannot listen on ${config.listen}: permission denied`
        : err.message;
  logger.error("failed to start", { error: message });
  process.stderr.write(`bhatti gateway: ${message}\n`);
  await shutdown.shutdown("startup failed");
  process.exit(1);
}
