/** IPv4 addresses as unsigned 32-bit numbers, and CIDR blocks. */

export interface Cidr {
  /** Network address (host bits cleared). */
  readonly base: number;
  readonly prefix: number;
}

const octet = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses a dotted quad ("10.0.0.1"); undefined if it is not one. Leading zeros are refused. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const part of parts) {
    if (!octet.test(part)) return undefined;
    n = n * 256 + Number(part);
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses "a.b.c.d/n" or a bare address (a /32). Host bits are cleared, so "10.0.0.5/24"
 * becomes 10.0.0.0/24. Undefined if the text is not a CIDR.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const addr = parseIpv4(slash === -1 ? text : text.slice(0, slash));
  if (addr === undefined) return undefined;
  let prefix = 32;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^(3[0-2]|[12]?\d)$/.test(p)) return undefined;
    prefix = Number(p);
  }
  return { base: (addr & prefixMask(prefix)) >>> 0, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.base)}/${cidr.prefix}`;
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return (address & prefixMask(cidr.prefix)) >>> 0 === cidr.base;
}

function cidrList(texts: readonly string[]): readonly Cidr[] {
  return texts.map((t) => {
    const c = parseCidr(t);
    if (c === undefined) throw new Error(`bad built-in CIDR ${t}`);
    return c;
  });
}

/**
 * Never reachable from a sandbox, whatever its policy: "this network", loopback,
 * link-local (169.254.169.254, the cloud metadata address, included), multicast, reserved
 * and broadcast.
 */
export const ALWAYS_DENIED_RANGES = cidrList([
  "0.0.0.0/8",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "224.0.0.0/4",
  "240.0.0.0/4",
]);

/** Private ranges: denied unless an allow-list CIDR opens them. */
export const PRIVATE_RANGES = cidrList([
  "10.0.0.0/8",
  "100.64.0.0/10",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
]);

export function isNonPublic(address: number): boolean {
  return [...ALWAYS_DENIED_RANGES, ...PRIVATE_RANGES].some((c) => cidrContains(c, address));
}
