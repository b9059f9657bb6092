import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { join } from "node:path";
import { ConfigError, type Logger, type ServerConfig } from "@bhatti/runtime";
import type { PreviewProxy } from "./preview-proxy.js";

/** Settings that only make sense together, checked when the gateway is built. */
export function checkProxyConfig(config: ServerConfig): void {
  if (config.proxy_mode === "path" && config.proxy_listen === "")
    throw new ConfigError('proxy_mode "path" needs proxy_listen (path mode is served only there)');
  if (config.proxy_tls && config.proxy_listen === "")
    throw new ConfigError("proxy_tls needs proxy_listen (the API listener stays plain HTTP)");
}

/**
 * The separate public listener (`proxy_listen`): published ports only (domain and path mode),
 * never the API. HTTPS when `proxy_tls` is on, HTTP/1.1 only (no HTTP/2, as v1).
 */
export function createProxyListener(
  config: ServerConfig,
  preview: PreviewProxy,
  logger: Logger,
): http.Server | https.Server {
  const handler: http.RequestListener = (req, res) => preview.handle(req, res, "public");
  const server = config.proxy_tls
    ? https.createServer({ ...proxyTlsFiles(config, logger), ALPNProtocols: ["http/1.1"] }, handler)
    : http.createServer(handler);
  server.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) =>
    preview.upgrade(req, socket, head, "public"),
  );
  return server;
}

/**
 * The certificate and key: the configured files, or else a self-signed wildcard for
 * `*.<proxy_zone>` made once with openssl (EC P-256, 825 days) under `<state_dir>/proxy-tls/`.
 * For local use only; production takes a real wildcard (see docs/publish.md, ACME DNS-01).
 */
export function proxyTlsFiles(config: ServerConfig, logger: Logger): { cert: Buffer; key: Buffer } {
  if (config.proxy_tls_cert !== "" || config.proxy_tls_key !== "") {
    if (config.proxy_tls_cert === "" || config.proxy_tls_key === "")
      throw new Error("proxy_tls_cert and proxy_tls_key go together");
    return { cert: readFileSync(config.proxy_tls_cert), key: readFileSync(config.proxy_tls_key) };
  }
  const dir = join(config.state_dir, "proxy-tls");
  const cert = join(dir, "self-signed.crt");
  const key = join(dir, "self-signed.key");
  if (!existsSync(cert) || !existsSync(key)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const zone = config.proxy_zone;
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "825",
        "-subj",
        `/CN=*.${zone}`,
        "-addext",
        `subjectAltName=DNS:*.${zone},DNS:${zone}`,
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    logger.info("generated a self-signed proxy certificate", { cert, zone: `*.${zone}` });
  }
  return { cert: readFileSync(cert), key: readFileSync(key) };
}
