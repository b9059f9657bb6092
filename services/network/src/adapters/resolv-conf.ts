import { readFileSync } from "node:fs";
import { isNonPublic, parseIpv4 } from "../domain/ipv4.js";

/** The `nameserver` addresses of a resolv.conf text (IPv4 only; sandboxes have no IPv6). */
export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(m[1])) servers.push(m[1]);
  }
  return servers;
}

export function hostResolvers(path = "/etc/resolv.conf"): string[] {
  try {
    return parseResolvConf(readFileSync(path, "utf8"));
  } catch {
    return [];
  }
}

/**
 * Used when `dns_upstreams` is unset and the host has no public resolver in resolv.conf
 * (Cloudflare, then Google).
 */
export const PUBLIC_FALLBACK_RESOLVERS = ["1.1.1.1", "8.8.8.8"] as const;

/**
 * The resolvers sandboxes' queries go to when `dns_upstreams` is unset: the host's public
 * nameservers only. A loopback stub (127.0.0.53), a link-local or private VPC resolver would
 * answer host-local and internal names (/etc/hosts, *.internal) to every tenant, so those
 * are skipped; with none left, the public fallback resolvers are used.
 */
export function defaultUpstreamHosts(hostServers: readonly string[]): {
  hosts: string[];
  skipped: string[];
} {
  const hosts: string[] = [];
  const skipped: string[] = [];
  for (const server of hostServers) {
    const n = parseIpv4(server);
    if (n === undefined || isNonPublic(n)) skipped.push(server);
    else hosts.push(server);
  }
  return { hosts: hosts.length > 0 ? hosts : [...PUBLIC_FALLBACK_RESOLVERS], skipped };
}
