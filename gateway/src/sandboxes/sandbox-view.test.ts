import { SandboxRecordSchema } from "@bhatti/proto";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { sandboxMessage } from "./sandbox-view.js";

const record = create(SandboxRecordSchema, { id: "0123456789abcdef", name: "s", status: "running" });

describe("sandboxMessage (Connect API)", () => {
  it("carries when the sandbox entered its thermal state, in unix ms", () => {
    const since = Date.UTC(2026, 10, 28, 12, 0, 0);
    const m = sandboxMessage({ record, thermal: "warm", thermalSinceMs: since });
    expect(m.thermal).toBe("warm");
    expect(m.thermalSinceMs).toBe(BigInt(since));
  });

  it("is 0 without a thermal state or a time", () => {
    expect(sandboxMessage({ record, thermal: "", thermalSinceMs: 5 }).thermalSinceMs).toBe(0n);
    expect(sandboxMessage({ record, thermal: "hot" }).thermalSinceMs).toBe(0n);
  });
});
