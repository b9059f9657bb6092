import { ConfigError } from "./config.js";

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseListenAddress(listen: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`invalid value for "listen": ${JSON.stringify(listen)} is not host:port`);
  }
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}
