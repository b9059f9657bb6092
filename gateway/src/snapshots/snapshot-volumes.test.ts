import { describe, expect, it } from "vitest";
import { recordedVolumes } from "./snapshot-volumes.js";

describe("a snapshot row's recorded volumes", () => {
  it("reads manifest.volumes; anything else is none; read-only only when true", () => {
    expect(
      recordedVolumes({
        volumes: [
          { name: "data", mount: "/data", readOnly: false },
          { name: "ref", mount: "/ref", readOnly: true },
          { name: "odd", mount: "/odd", readOnly: "yes" },
        ],
      }),
    ).toEqual([
      { name: "data", mount: "/data", readOnly: false },
      { name: "ref", mount: "/ref", readOnly: true },
      { name: "odd", mount: "/odd", readOnly: false },
    ]);
    // Rows written before volumes were recorded, or damaged ones: no volumes, not a crash.
    expect(recordedVolumes({})).toEqual([]);
    expect(recordedVolumes({ volumes: "data" })).toEqual([]);
    expect(recordedVolumes({ volumes: [null, 3, { name: "x" }, { mount: "/y" }] })).toEqual([]);
  });
});
