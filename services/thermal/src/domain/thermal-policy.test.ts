import { describe, expect, it } from "vitest";
import { createFailureCounters } from "./failure-counters.js";
import { createPinRegistry } from "./pin-registry.js";
import { type PolicyInput, decide, decideAfterProbe } from "./thermal-policy.js";

const t = { warmAfterMs: 30_000, coldAfterMs: 1_800_000 };
const now = 10_000_000;
const hot: PolicyInput = {
  status: "running",
  thermal: "hot",
  thermalSince: now - 3_600_000,
  keepHot: false,
  lastActivity: now - 31_000,
  pinned: false,
  snapshotFailures: 0,
};

describe("decide", () => {
  it("asks the agent only once the host clock says idle (fast path first)", () => {
    expect(decide({ ...hot, lastActivity: now - 29_000 }, now, t)).toEqual({
      kind: "keep",
      reason: "active",
    });
    expect(decide(hot, now, t)).toEqual({ kind: "probe", idleMs: 31_000 });
  });

  it("never cools keep_hot, pinned, stopped, unknown or unknown-to-the-engine sandboxes", () => {
    expect(decide({ ...hot, keepHot: true }, now, t).kind).toBe("keep");
    expect(decide({ ...hot, pinned: true }, now, t).kind).toBe("keep");
    expect(decide({ ...hot, status: "stopped" }, now, t).kind).toBe("keep");
    expect(decide({ ...hot, status: "unknown" }, now, t).kind).toBe("keep");
    expect(decide({ ...hot, thermal: undefined }, now, t).kind).toBe("keep");
    const warmDue = { ...hot, thermal: "warm" as const, thermalSince: now - 2_000_000 };
    expect(decide({ ...warmDue, keepHot: true }, now, t).kind).toBe("keep");
    expect(decide({ ...warmDue, pinned: true }, now, t).kind).toBe("keep");
  });

  it("checkpoints a warm sandbox cold_after after the pause, or at once to retry a failed snapshot", () => {
    const warm = { ...hot, thermal: "warm" as const, lastActivity: now - 2_000_000 };
    expect(decide({ ...warm, thermalSince: now - 1_799_000 }, now, t).kind).toBe("keep");
    expect(decide({ ...warm, thermalSince: now - 1_800_000 }, now, t)).toEqual({
      kind: "snapshot",
      warmForMs: 1_800_000,
    });
    expect(decide({ ...warm, thermalSince: now - 1_000, snapshotFailures: 1 }, now, t).kind).toBe("snapshot");
    // A touch after the pause that did not wake it restarts the cold clock.
    expect(decide({ ...warm, thermalSince: now - 1_900_000, lastActivity: now - 10 }, now, t).kind).toBe(
      "keep",
    );
    expect(decide({ ...hot, thermal: "cold" }, now, t).kind).toBe("keep");
  });
});

describe("decideAfterProbe", () => {
  const agent = {
    lastActivityUnix: Math.floor((now - 60_000) / 1000),
    activeSessions: 0,
    attachedSessions: 0,
  };

  it("pauses only when neither host nor guest saw activity and nothing is attached", () => {
    expect(decideAfterProbe(agent, now - 31_000, now, t)).toEqual({ kind: "pause", idleMs: 31_000 });
    expect(decideAfterProbe({ ...agent, attachedSessions: 1 }, now - 31_000, now, t).kind).toBe("keep");
    const guestBusy = decideAfterProbe(
      { ...agent, lastActivityUnix: Math.floor((now - 5_000) / 1000) },
      now - 31_000,
      now,
      t,
    );
    expect(guestBusy).toEqual({ kind: "keep", reason: "guest active", lastActivity: now - 5_000 });
  });
});

describe("failure counters", () => {
  it("deletes the key on reset, so a later failure starts from one (no resurrection)", () => {
    const c = createFailureCounters();
    for (let i = 0; i < 9; i++) c.increment("a");
    expect(c.get("a")).toBe(9);
    c.reset("a");
    expect(c.size()).toBe(0);
    expect(c.increment("a")).toBe(1);
  });
});

describe("pin registry", () => {
  it("sums live reporters, replaces a reporter's set, and forgets a silent reporter after its TTL", () => {
    const pins = createPinRegistry();
    pins.replace("gw1", new Map([["s", { interactiveClients: 1, inFlight: 0 }]]), 1_000, 0);
    pins.replace("gw2", new Map([["s", { interactiveClients: 0, inFlight: 2 }]]), 5_000, 0);
    expect(pins.pinOf("s", 10)).toEqual({ interactiveClients: 1, inFlight: 2 });
    expect(pins.pinOf("s", 1_000)).toEqual({ interactiveClients: 0, inFlight: 2 });
    pins.replace("gw2", new Map(), 5_000, 1_100);
    expect(pins.isPinned("s", 1_200)).toBe(false);
  });
});
