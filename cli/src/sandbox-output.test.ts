import { SandboxSchema } from "@bhatti/proto";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { sandboxJson, thermalText } from "./sandbox-output.js";

const now = Date.UTC(2026, 10, 28, 12, 0, 0);
const sandbox = (status: string, thermal: string, sinceMs: number) =>
  create(SandboxSchema, {
    id: "0123456789abcdef",
    name: "s",
    status,
    thermal,
    thermalSinceMs: BigInt(sinceMs),
  });

describe("thermal in inspect", () => {
  it("shows the state and how long it has held for running and cold sandboxes", () => {
    expect(thermalText(sandbox("running", "warm", now - 135_000), now)).toBe("warm (since 2m15s ago)");
    expect(thermalText(sandbox("running", "hot", now - 4_000), now)).toBe("hot (since 4s ago)");
    expect(thermalText(sandbox("stopped", "cold", now - 3 * 3600_000), now)).toBe("cold (since 3h0m0s ago)");
  });

  it("shows the state alone when the server sent no time, and nothing without a state", () => {
    expect(thermalText(sandbox("running", "hot", 0), now)).toBe("hot");
    expect(thermalText(sandbox("unknown", "cold", now), now)).toBeUndefined();
    expect(thermalText(sandbox("running", "", now), now)).toBeUndefined();
  });

  it("--json carries thermal_since as ISO 8601, like the REST API", () => {
    const json = sandboxJson(sandbox("running", "warm", now - 1000));
    expect(json["thermal"]).toBe("warm");
    expect(json["thermal_since"]).toBe(new Date(now - 1000).toISOString());
    expect(sandboxJson(sandbox("running", "warm", 0))["thermal_since"]).toBeUndefined();
  });
});
