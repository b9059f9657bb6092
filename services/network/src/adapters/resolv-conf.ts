import { readFileSync } from "node:fs";

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
