import { describe, expect, it } from "vitest";
import { findOrphans } from "./orphans.js";

describe("findOrphans", () => {
  it("keeps what is owned and foreign names, removes product leftovers", () => {
    const kept = "aaaaaaaaaaaaaaaa";
    const recordedGone = "bbbbbbbbbbbbbbbb";
    const vethLeft = "cccccccccc000000";
    const foreign = "dddddddddddddddd";
    const result = findOrphans({
      links: [
        "lo",
        "eth0",
        "wan0",
        "bhbr1",
        "bhbr2",
        `bhv${kept.slice(0, 10)}`,
        `bhv${vethLeft.slice(0, 10)}`,
        "bhtap0123456789",
        "bhvNOTHEX000",
      ],
      namespaces: [
        `bhatti-${kept}`,
        `bhatti-${recordedGone}`,
        `bhatti-${vethLeft}`,
        `bhatti-${foreign}`,
        "bt-host-1",
        "bhatti-short",
      ],
      wantedLinks: new Set(["bhbr1", `bhv${kept.slice(0, 10)}`]),
      keptSandboxIds: new Set([kept]),
      recordedSandboxIds: new Set([kept, recordedGone]),
    });
    expect(result.links).toEqual(["bhbr2", `bhv${vethLeft.slice(0, 10)}`, "bhtap0123456789"]);
    expect(result.namespaces).toEqual([`bhatti-${recordedGone}`, `bhatti-${vethLeft}`]);
  });
});
