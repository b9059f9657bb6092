import { describe, expect, it } from "vitest";
import { ThermalState } from "../gen/bhatti/v1/thermal_state_pb.js";
import { VmmSandboxStatus } from "../gen/bhatti/v1/vmm_pb.js";
import { isSandboxId, isUserId } from "./ids.js";
import { thermalName, thermalStateOf, vmmStatusName, vmmStatusOf } from "./enum-names.js";
import { ENV_NAME_RULE, NAME_RULE, SANDBOX_NAME_RULE } from "./names.js";

describe("ids", () => {
  it("accept the store's 16 lowercase hex chars and nothing else", () => {
    expect(isSandboxId("0123456789abcdef")).toBe(true);
    expect(isUserId("0123456789abcdef")).toBe(true);
    for (const bad of ["", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "../../etc/passwd1"]) {
      expect(isSandboxId(bad)).toBe(false);
      expect(isUserId(bad)).toBe(false);
    }
  });
});

describe("names", () => {
  it("sandbox names also end with a letter or digit (a valid host name label)", () => {
    expect(SANDBOX_NAME_RULE.test("web-1")).toBe(true);
    expect(SANDBOX_NAME_RULE.test("a".repeat(63))).toBe(true);
    expect(SANDBOX_NAME_RULE.test("web-")).toBe(false);
    expect(SANDBOX_NAME_RULE.test("a".repeat(64))).toBe(false);
    expect(NAME_RULE.test("web-")).toBe(true);
    expect(NAME_RULE.test("-web")).toBe(false);
    expect(NAME_RULE.test("a".repeat(64))).toBe(false);
  });
});

describe("enum names", () => {
  it("thermal states and names map both ways; UNSPECIFIED has no name", () => {
    for (const name of ["hot", "warm", "cold"] as const) expect(thermalName(thermalStateOf(name))).toBe(name);
    expect(thermalStateOf("hot")).toBe(ThermalState.HOT);
    expect(thermalName(ThermalState.UNSPECIFIED)).toBeUndefined();
    expect(thermalName(99 as ThermalState)).toBeUndefined();
  });

  it("vmm statuses and names map both ways; UNSPECIFIED has no name", () => {
    for (const name of ["running", "stopped", "unknown"] as const)
      expect(vmmStatusName(vmmStatusOf(name))).toBe(name);
    expect(vmmStatusOf("stopped")).toBe(VmmSandboxStatus.STOPPED);
    expect(vmmStatusName(VmmSandboxStatus.UNSPECIFIED)).toBeUndefined();
  });
});

describe("env names", () => {
  it("are C identifiers of at most 128 chars", () => {
    expect(ENV_NAME_RULE.test("_A1")).toBe(true);
    expect(ENV_NAME_RULE.test("A".repeat(128))).toBe(true);
    expect(ENV_NAME_RULE.test("A".repeat(129))).toBe(false);
    expect(ENV_NAME_RULE.test("1A")).toBe(false);
    expect(ENV_NAME_RULE.test("A-B")).toBe(false);
  });
});
