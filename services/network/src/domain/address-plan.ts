import { type Cidr, formatCidr, formatIpv4, parseCidr, parseIpv4 } from "./ipv4.js";

/** Usable host numbers in a user's /24: .1 is the gateway, .0 and .255 are reserved. */
export const FIRST_HOST = 2;
export const LAST_HOST = 254;
export const SUBNET_PREFIX = 24;

export interface UserSubnet {
  readonly index: number;
  /** Network address of the /24. */
  readonly base: number;
  readonly gateway: number;
}

/**
 * How the configured pool maps to addresses: subnet index i (from 1) is the i-th /24 of the
 * pool, a sandbox's host number h is the address base+h.
 */
export interface AddressPlan {
  readonly pool: Cidr;
  /** The pool as configured text, canonical ("10.201.0.0/16"): named in exhaustion errors. */
  readonly poolText: string;
  /** How many /24s the pool holds (the highest subnet index). */
  readonly maxIndex: number;
  subnet(index: number): UserSubnet;
  address(index: number, host: number): number;
  /** The subnet index and host number of an address in the pool, if it is a usable host. */
  locate(address: number): { index: number; host: number } | undefined;
}

/** Throws a readable error if the pool is not a /8../24 CIDR. */
export function createAddressPlan(poolText: string): AddressPlan {
  const pool = parseCidr(poolText);
  if (pool === undefined) throw new Error(`network_pool "${poolText}" is not an IPv4 CIDR`);
  if (pool.prefix < 8 || pool.prefix > SUBNET_PREFIX) {
    throw new Error(`network_pool ${formatCidr(pool)} must be between a /8 and a /24`);
  }
  const maxIndex = 2 ** (SUBNET_PREFIX - pool.prefix);
  const subnet = (index: number): UserSubnet => {
    if (!Number.isInteger(index) || index < 1 || index > maxIndex) {
      throw new RangeError(`subnet index ${index} is outside 1..${maxIndex} of ${formatCidr(pool)}`);
    }
    const base = pool.base + (index - 1) * 256;
    return { index, base, gateway: base + 1 };
  };
  return {
    pool,
    poolText: formatCidr(pool),
    maxIndex,
    subnet,
    address: (index, host) => subnet(index).base + host,
    locate(address) {
      const offset = address - pool.base;
      if (offset < 0 || offset >= maxIndex * 256) return undefined;
      const host = offset % 256;
      if (host < FIRST_HOST || host > LAST_HOST) return undefined;
      return { index: Math.floor(offset / 256) + 1, host };
    },
  };
}

/** A locally administered unicast MAC derived from an address: 02:bb:a:b:c:d in hex. */
export function macForAddress(address: number): string {
  const bytes = [0x02, 0xbb, address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

export { formatIpv4, parseIpv4 };
