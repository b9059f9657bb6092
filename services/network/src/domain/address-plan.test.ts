import { describe, expect, it } from "vitest";
import { createAddressPlan, macForAddress } from "./address-plan.js";
import { formatCidr, isNonPublic, parseCidr, parseIpv4 } from "./ipv4.js";

describe("ipv4", () => {
  it("parses dotted quads strictly", () => {
    expect(parseIpv4("10.0.0.1")).toBe(0x0a000001);
    expect(parseIpv4("255.255.255.255")).toBe(0xffffffff);
    for (const bad of ["10.0.0", "10.0.0.256", "010.0.0.1", "a.b.c.d", "1.2.3.4.5", ""]) {
      expect(parseIpv4(bad)).toBeUndefined();
    }
  });

  it("normalises CIDRs and rejects bad prefixes", () => {
    expect(formatCidr(parseCidr("10.1.2.3/24") ?? { base: 0, prefix: 0 })).toBe("10.1.2.0/24");
    expect(formatCidr(parseCidr("198.51.100.7") ?? { base: 0, prefix: 0 })).toBe("198.51.100.7/32");
    expect(formatCidr(parseCidr("0.0.0.0/0") ?? { base: 1, prefix: 1 })).toBe("0.0.0.0/0");
    for (const bad of ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/08", "x/8"]) {
      expect(parseCidr(bad)).toBeUndefined();
    }
  });

  it("knows which addresses are not public", () => {
    for (const a of ["10.1.1.1", "172.20.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1", "100.64.0.1"]) {
      expect(isNonPublic(parseIpv4(a) ?? 0)).toBe(true);
    }
    for (const a of ["198.51.100.1", "8.8.8.8", "172.32.0.1"])
      expect(isNonPublic(parseIpv4(a) ?? 0)).toBe(false);
  });
});

describe("address plan", () => {
  it("maps subnet index i to the i-th /24 of the pool", () => {
    const plan = createAddressPlan("10.201.0.0/16");
    expect(plan.maxIndex).toBe(256);
    expect(plan.subnet(1).base).toBe(parseIpv4("10.201.0.0"));
    expect(plan.subnet(1).gateway).toBe(parseIpv4("10.201.0.1"));
    expect(plan.address(3, 7)).toBe(parseIpv4("10.201.2.7"));
    expect(plan.locate(parseIpv4("10.201.2.7") ?? 0)).toEqual({ index: 3, host: 7 });
    expect(plan.locate(parseIpv4("10.201.2.1") ?? 0)).toBeUndefined(); // the gateway
    expect(plan.locate(parseIpv4("10.202.0.2") ?? 0)).toBeUndefined();
    expect(() => plan.subnet(257)).toThrow(/outside 1..256/);
  });

  it("refuses pools that are not a /8 to /24", () => {
    expect(() => createAddressPlan("10.0.0.0/25")).toThrow(/between a \/8 and a \/24/);
    expect(() => createAddressPlan("10.0.0.0/7")).toThrow(/between/);
    expect(() => createAddressPlan("nonsense")).toThrow(/not an IPv4 CIDR/);
    expect(createAddressPlan("10.9.9.9/24").poolText).toBe("10.9.9.0/24");
  });

  it("derives a locally administered unicast MAC from the address", () => {
    expect(macForAddress(parseIpv4("10.201.0.2") ?? 0)).toBe("02:bb:0a:c9:00:02");
  });
});
