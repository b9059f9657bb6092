import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkSandboxName, effectiveExecTimeoutSec } from "@bhatti/gateway";
import { type SandboxSpec, validateSpec } from "@bhatti/service-vmm/engine";

const spec = (name: string): SandboxSpec => ({
  id: "0123456789abcdef",
  name,
  image: "busybox",
  cpus: 0,
  memoryMb: 0,
  pidsLimit: 0,
  env: {},
  secrets: {},
  files: [],
  hostname: "",
  userId: "u",
});

const accepted = (name: string) => {
  try {
    checkSandboxName(name);
    return true;
  } catch {
    return false;
  }
};

// The gateway's name rule and the vmm's spec check agree: a name the API accepts never fails in
// the vmm after its row was created (it did for `web-`, whose hostname is not a valid label).
describe("sandbox names and exec timeouts at the gateway", () => {
  it("accepts a name only if the vmm accepts it and the hostname derived from it", () => {
    const nameChars = fc.constantFrom(..."abcXYZ019._-".split(""), "é", " ", "/");
    fc.assert(
      fc.property(fc.array(nameChars, { minLength: 0, maxLength: 70 }), (chars) => {
        const name = chars.join("");
        if (accepted(name)) expect(() => validateSpec(spec(name))).not.toThrow();
      }),
      { numRuns: 2000 },
    );
    for (const name of ["web-", "a_", "a.", "-a", ".a", "", "a".repeat(64), `${"a".repeat(62)}-`])
      expect(accepted(name), name).toBe(false);
    for (const name of ["a", "web-1", "my_app.v2", "A.b_c-d", "a".repeat(63), "sandbox-1a2b3c"])
      expect(accepted(name), name).toBe(true);
  });

  it("uses 1..86400 as given, absent or 0 as 300, and refuses anything else", () => {
    expect(effectiveExecTimeoutSec(undefined)).toBe(300);
    expect(effectiveExecTimeoutSec(null)).toBe(300);
    expect(effectiveExecTimeoutSec(0)).toBe(300);
    expect(effectiveExecTimeoutSec(1)).toBe(1);
    expect(effectiveExecTimeoutSec(86_400)).toBe(86_400);
    expect(effectiveExecTimeoutSec(12.9)).toBe(12);
    for (const bad of [86_401, -1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, "300", true, {}])
      expect(() => effectiveExecTimeoutSec(bad), String(bad)).toThrow(
        /timeout_sec must be between 1 and 86400/,
      );
  });
});
