import { describe, expect, it } from "vitest";
import {
  InvalidPolicyError,
  normaliseHostPattern,
  policyAllowsHost,
  validateEgressPolicy,
} from "./egress-policy.js";

const allowList = (allowCidrs: string[], allowHosts: string[]) =>
  validateEgressPolicy({ mode: "allow-list", allowCidrs, allowHosts });

describe("egress policy", () => {
  it("normalises allow-lists", () => {
    const p = allowList(
      ["198.51.100.7/24", "198.51.100.0/24", "203.0.113.5"],
      ["API.Example.com.", "*.Example.org"],
    );
    expect(p).toEqual({
      mode: "allow-list",
      cidrs: [
        { base: 0xc6336400, prefix: 24 },
        { base: 0xcb007105, prefix: 32 },
      ],
      hosts: ["api.example.com", "*.example.org"],
    });
  });

  it("rejects invalid CIDRs and host names, naming them", () => {
    expect(() => allowList(["300.0.0.0/8"], [])).toThrow(InvalidPolicyError);
    expect(() => allowList(["10.0.0.0/33"], [])).toThrow(/10.0.0.0\/33/);
    for (const bad of [
      "-bad.com",
      "a..b",
      "*.com",
      "x.*.com",
      "under_score.com",
      "",
      `${"a".repeat(64)}.com`,
    ]) {
      expect(normaliseHostPattern(bad)).toBeUndefined();
      expect(() => allowList([], [bad])).toThrow(InvalidPolicyError);
    }
    expect(() => validateEgressPolicy({ mode: "deny-all", allowCidrs: ["1.2.3.4"], allowHosts: [] })).toThrow(
      /only apply to an allow-list/,
    );
  });

  it("matches exact names and sub-domains of wildcards", () => {
    const p = allowList([], ["api.example.com", "*.example.org"]);
    expect(policyAllowsHost(p, "api.example.com")).toBe(true);
    expect(policyAllowsHost(p, "x.api.example.com")).toBe(false);
    expect(policyAllowsHost(p, "a.b.example.org")).toBe(true);
    expect(policyAllowsHost(p, "example.org")).toBe(false);
    expect(policyAllowsHost(p, "badexample.org")).toBe(false);
    expect(policyAllowsHost({ mode: "allow-all" }, "anything")).toBe(true);
    expect(policyAllowsHost({ mode: "deny-all" }, "anything")).toBe(false);
  });
});
