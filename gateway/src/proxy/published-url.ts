import type { ServerConfig } from "@bhatti/runtime";

type UrlConfig = Pick<
  ServerConfig,
  "listen" | "proxy_listen" | "proxy_zone" | "proxy_mode" | "proxy_public_host" | "proxy_tls"
>;

/** `host:port` → its port, or undefined. */
const portOf = (hostPort: string): string | undefined => /:(\d{1,5})$/.exec(hostPort)?.[1];

/**
 * The URL a published alias is reached at. Domain mode: `<scheme>://<alias>.<zone>[:port]/`,
 * the port being that of `proxy_public_host`, else `proxy_listen`, else `listen` (left out when
 * it is the scheme's default). Path mode: `<scheme>://<public host>/<alias>/`.
 */
export function publishedUrl(config: UrlConfig, alias: string): string {
  const scheme = config.proxy_tls && config.proxy_listen !== "" ? "https" : "http";
  const front =
    config.proxy_public_host !== ""
      ? config.proxy_public_host
      : config.proxy_listen !== ""
        ? config.proxy_listen
        : config.listen;
  if (config.proxy_mode === "path") return `${scheme}://${front}/${alias}/`;
  const port = portOf(front);
  const defaultPort = scheme === "https" ? "443" : "80";
  const suffix = port === undefined || port === defaultPort ? "" : `:${port}`;
  return `${scheme}://${alias}.${config.proxy_zone}${suffix}/`;
}
