import { type Cidr, formatCidr, parseCidr } from "./ipv4.js";

/** A sandbox's egress policy, validated and normalised. */
export type EgressPolicy =
  | { readonly mode: "allow-all" }
  | { readonly mode: "deny-all" }
  | { readonly mode: "allow-list"; readonly cidrs: readonly Cidr[]; readonly hosts: readonly string[] };

export const ALLOW_ALL: EgressPolicy = { mode: "allow-all" };

/** A policy as callers send it (the proto's shape, mode as text). */
export interface EgressPolicyInput {
  mode: "allow-all" | "deny-all" | "allow-list";
  allowCidrs: readonly string[];
  allowHosts: readonly string[];
}

/** Bad policy input; the API maps it to InvalidArgument. */
export class InvalidPolicyError extends Error {
  override readonly name = "InvalidPolicyError";
}

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lowercase, no trailing dot; undefined if not a valid host name. */
function normaliseHostName(raw: string): string | undefined {
  const name = raw.trim().toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || name.length > 253) return undefined;
  return name.split(".").every((l) => label.test(l)) ? name : undefined;
}

/** An allowed host: an exact name, or "*." and a name with at least two labels. */
export function normaliseHostPattern(raw: string): string | undefined {
  const trimmed = raw.trim().toLowerCase();
  if (trimmed.startsWith("*.")) {
    const rest = normaliseHostName(trimmed.slice(2));
    return rest?.includes(".") ? `*.${rest}` : undefined;
  }
  return normaliseHostName(trimmed);
}

export function validateEgressPolicy(input: EgressPolicyInput): EgressPolicy {
  if (input.mode !== "allow-list") {
    if (input.allowCidrs.length > 0 || input.allowHosts.length > 0) {
      throw new InvalidPolicyError(`allow_cidrs and allow_hosts only apply to an allow-list policy`);
    }
    return input.mode === "deny-all" ? { mode: "deny-all" } : ALLOW_ALL;
  }
  const cidrs = new Map<string, Cidr>();
  for (const raw of input.allowCidrs) {
    const cidr = parseCidr(raw.trim());
    if (cidr === undefined) throw new InvalidPolicyError(`invalid CIDR "${raw}" in allow_cidrs`);
    cidrs.set(formatCidr(cidr), cidr);
  }
  const hosts = new Set<string>();
  for (const raw of input.allowHosts) {
    const host = normaliseHostPattern(raw);
    if (host === undefined) throw new InvalidPolicyError(`invalid host name "${raw}" in allow_hosts`);
    hosts.add(host);
  }
  return { mode: "allow-list", cidrs: [...cidrs.values()], hosts: [...hosts] };
}

/** Whether a (lowercase, dot-less) query name is allowed by the policy's host patterns. */
export function policyAllowsHost(policy: EgressPolicy, name: string): boolean {
  if (policy.mode === "allow-all") return true;
  if (policy.mode === "deny-all") return false;
  return policy.hosts.some((pattern) =>
    pattern.startsWith("*.") ? name.endsWith(pattern.slice(1)) : name === pattern,
  );
}

export function describePolicy(policy: EgressPolicy): EgressPolicyInput {
  return policy.mode === "allow-list"
    ? { mode: "allow-list", allowCidrs: policy.cidrs.map(formatCidr), allowHosts: [...policy.hosts] }
    : { mode: policy.mode, allowCidrs: [], allowHosts: [] };
}
