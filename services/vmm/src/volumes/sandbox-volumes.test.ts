import { describe, expect, it } from "vitest";
import { isEngineError } from "../engine/engine-error.js";
import { holderOf, runningHolders, volumesForRestore } from "./sandbox-volumes.js";

const vol = (name: string, mount: string, readOnly = false, volumeId = "00000000000000a1") => ({
  volumeId,
  name,
  mount,
  readOnly,
});

describe("sandbox volumes", () => {
  it("holders are the sandboxes with a container (hot or warm) and volumes", () => {
    const records = [
      { id: "a", userId: "u", thermal: "hot" as const, volumes: [vol("d", "/d")] },
      { id: "b", userId: "u", thermal: "warm" as const, volumes: [vol("d", "/d")] },
      { id: "c", userId: "u", thermal: "cold" as const, volumes: [vol("d", "/d")] },
      { id: "d", userId: "u", thermal: "hot" as const },
      { id: "e", userId: "u", thermal: "hot" as const, volumes: [] },
    ];
    expect(runningHolders(records).map((h) => h.id)).toEqual(["a", "b"]);
    expect(holderOf(records[3] as (typeof records)[number])).toEqual({ id: "d", userId: "u", volumes: [] });
  });

  it("a restore needs exactly the recorded mount points, by name; ro as recorded", () => {
    const recorded = [
      { name: "data", mount: "/data", readOnly: false },
      { name: "ref", mount: "/ref", readOnly: true },
    ];
    const resolved = [
      vol("ref", "/ref", false, "00000000000000b2"),
      vol("data", "/data", false, "00000000000000b1"),
    ];
    expect(volumesForRestore(recorded, resolved)).toEqual([
      vol("data", "/data", false, "00000000000000b1"),
      vol("ref", "/ref", true, "00000000000000b2"),
    ]);
    expect(volumesForRestore([], [])).toEqual([]);
    const refused = (r: typeof recorded, v: ReturnType<typeof vol>[], text: RegExp) => {
      try {
        volumesForRestore(r, v);
      } catch (e) {
        expect(isEngineError(e, "failed_precondition")).toBe(true);
        expect((e as Error).message).toMatch(text);
        return;
      }
      throw new Error("not refused");
    };
    refused(recorded, [vol("data", "/data")], /missing volume\(s\) ref at \/ref/);
    refused(recorded, [vol("data", "/data"), vol("other", "/ref")], /missing volume\(s\) ref at \/ref/);
    refused(recorded, [...resolved, vol("new", "/new")], /not in the snapshot new at \/new/);
    refused([], [vol("new", "/new")], /not in the snapshot/);
    // An id that is not a volume id never reaches a host path.
    expect(() =>
      volumesForRestore(
        [{ name: "data", mount: "/data", readOnly: false }],
        [vol("data", "/data", false, "../x")],
      ),
    ).toThrow(/volume id "..\/x" is invalid/);
  });
});
