import { describe, expect, it } from "vitest";
import { type AdoptionCleanup, type AdoptionFacts, type RunscProbe, classify } from "./adoption.js";
import type { GvisorSandboxRecord } from "./sandbox-record.js";

// The adoption decision for every case a restarted vmm meets, without runsc: the facts are what
// `observe` reads from the record, the checkpoint files, the cgroup and `runsc state`.

const ID = "0123456789abcdef";
const NOW = 1_700_000_000_000;
const EARLIER = NOW - 60_000;

const record = (over: Partial<GvisorSandboxRecord> = {}): GvisorSandboxRecord => ({
  version: 1,
  id: ID,
  name: "sb",
  image: "busybox",
  imageRootfs: "/images/busybox/rootfs",
  cpus: 1,
  memoryMb: 256,
  pidsLimit: 4096,
  userId: "u1",
  hostname: "sb",
  createdAt: EARLIER,
  token: "t".repeat(32),
  address: "10.0.0.2",
  gateway: "10.0.0.1",
  netnsPath: "/run/netns/bt-x",
  status: "running",
  thermal: "hot",
  thermalSince: EARLIER,
  ...over,
});

const state = (status: "running" | "paused" | "stopped" | "created"): RunscProbe => ({
  kind: "state",
  state: { id: ID, status, pid: status === "stopped" ? 0 : 42 },
});
const gone: RunscProbe = { kind: "state", state: undefined };

const facts = (over: Partial<AdoptionFacts> = {}): AdoptionFacts => ({
  id: ID,
  record: { kind: "ok", record: record() },
  checkpointTmp: "absent",
  checkpointDir: false,
  checkpointImage: false,
  frozenWithTasks: false,
  runsc: state("running"),
  ...over,
});

const untouched: AdoptionCleanup = {
  killRunsc: false,
  stopLeftovers: false,
  checkpointTmp: "keep",
  removeCheckpoint: false,
};

const kept = (f: AdoptionFacts) => {
  const d = classify(f, NOW);
  if (d.kind !== "keep") throw new Error(`expected keep, got ${d.kind}`);
  return d;
};

describe("adoption classify", () => {
  it("removes a directory without a record: a create that never finished", () => {
    expect(classify(facts({ record: { kind: "missing" } }), NOW)).toEqual({ kind: "remove" });
  });

  it("quarantines a directory whose record is unreadable, whatever else is there", () => {
    const d = classify(
      facts({
        record: { kind: "unreadable", reason: "only engine.json.tmp exists" },
        checkpointTmp: "complete",
        checkpointImage: true,
      }),
      NOW,
    );
    expect(d).toEqual({ kind: "quarantine", reason: "only engine.json.tmp exists" });
  });

  it("keeps a running sandbox hot, discards a cut-off checkpoint.tmp, leaves its processes alone", () => {
    const d = kept(
      facts({ checkpointTmp: "incomplete", record: { kind: "ok", record: record({ warmBy: "freeze" }) } }),
    );
    expect(d.bucket).toBe("running");
    expect(d.record).toMatchObject({ thermal: "hot", status: "running", thermalSince: EARLIER });
    expect(d.record.warmBy).toBeUndefined();
    expect(d.cleanup).toEqual({ ...untouched, checkpointTmp: "discard" });
  });

  it("keeps a runsc-paused sandbox warm by runsc", () => {
    const d = kept(facts({ runsc: state("paused") }));
    expect(d.bucket).toBe("running");
    expect(d.record).toMatchObject({ thermal: "warm", warmBy: "runsc", status: "running" });
  });

  it("keeps a frozen cgroup with tasks warm by freeze without asking runsc", () => {
    const d = kept(facts({ frozenWithTasks: true, runsc: { kind: "not-asked" } }));
    expect(d.bucket).toBe("running");
    expect(d.record).toMatchObject({ thermal: "warm", warmBy: "freeze", status: "running" });
    expect(d.cleanup).toEqual(untouched);
  });

  it("a restore cut off after runsc restored it: running, and the stale checkpoint goes", () => {
    const d = kept(
      facts({
        checkpointDir: true,
        checkpointImage: true,
        record: {
          kind: "ok",
          record: record({ thermal: "cold", status: "unknown", checkpointBytes: 9, restoreError: "x" }),
        },
      }),
    );
    expect(d.bucket).toBe("running");
    expect(d.record.thermal).toBe("hot");
    expect(d.record.checkpointBytes).toBeUndefined();
    expect(d.record.restoreError).toBeUndefined();
    expect(d.cleanup).toEqual({ ...untouched, checkpointTmp: "discard", removeCheckpoint: true });
  });

  it("a restored sandbox whose record still says cold (the restore writes hot in memory only): hot", () => {
    const d = kept(
      facts({
        checkpointDir: false,
        checkpointImage: false,
        record: { kind: "ok", record: record({ thermal: "cold", status: "stopped", checkpointBytes: 9 }) },
      }),
    );
    expect(d.bucket).toBe("running");
    expect(d.record).toMatchObject({ thermal: "hot", status: "running" });
    expect(d.record.checkpointBytes).toBeUndefined();
    expect(d.cleanup).toEqual({ ...untouched, checkpointTmp: "discard" });
  });

  it("never kills what runsc cannot report on: unknown, with the error, nothing touched", () => {
    const d = kept(facts({ runsc: { kind: "error", message: "state timed out" } }));
    expect(d.bucket).toBe("unknown");
    expect(d.record.status).toBe("unknown");
    expect(d.record.restoreError).toBe("runsc state failed at adoption: state timed out");
    expect(d.cleanup).toEqual(untouched);
  });

  it("a complete checkpoint.tmp wins over runsc saying running: promoted, cold, leftovers killed (#26)", () => {
    const d = kept(
      facts({ checkpointTmp: "complete", record: { kind: "ok", record: record({ restoreError: "old" }) } }),
    );
    expect(d.bucket).toBe("cold");
    expect(d.record).toMatchObject({ thermal: "cold", status: "stopped", thermalSince: NOW });
    expect(d.record.restoreError).toBeUndefined();
    expect(d.cleanup).toEqual({
      killRunsc: true,
      stopLeftovers: true,
      checkpointTmp: "promote",
      removeCheckpoint: false,
    });
  });

  it("a complete checkpoint.tmp is promoted even when runsc state fails", () => {
    const d = kept(facts({ checkpointTmp: "complete", runsc: { kind: "error", message: "boom" } }));
    expect(d.bucket).toBe("cold");
    expect(d.cleanup.killRunsc).toBe(true);
    expect(d.cleanup.checkpointTmp).toBe("promote");
  });

  it("a complete checkpoint.tmp of a frozen sandbox: cold (the frozen check is skipped)", () => {
    const d = kept(facts({ checkpointTmp: "complete", frozenWithTasks: true, runsc: gone }));
    expect(d.bucket).toBe("cold");
    expect(d.cleanup.checkpointTmp).toBe("promote");
  });

  it("a cold sandbox with its checkpoint stays cold; thermalSince kept; the stopped container is deleted", () => {
    const d = kept(
      facts({
        runsc: state("stopped"),
        checkpointDir: true,
        checkpointImage: true,
        record: { kind: "ok", record: record({ thermal: "cold", status: "stopped", checkpointBytes: 5 }) },
      }),
    );
    expect(d.bucket).toBe("cold");
    expect(d.record).toMatchObject({
      thermal: "cold",
      status: "stopped",
      thermalSince: EARLIER,
      checkpointBytes: 5,
    });
    expect(d.cleanup).toEqual({ ...untouched, killRunsc: true, stopLeftovers: true });
  });

  it("a cold sandbox runsc no longer knows: no runsc delete, leftovers still stopped", () => {
    const d = kept(
      facts({
        runsc: gone,
        checkpointDir: true,
        checkpointImage: true,
        record: { kind: "ok", record: record({ thermal: "cold", status: "stopped" }) },
      }),
    );
    expect(d.bucket).toBe("cold");
    expect(d.cleanup).toEqual({ ...untouched, stopLeftovers: true });
  });

  it("a hot record whose container stopped, with a checkpoint: cold since now", () => {
    const d = kept(facts({ runsc: state("stopped"), checkpointDir: true, checkpointImage: true }));
    expect(d.bucket).toBe("cold");
    expect(d.record.thermalSince).toBe(NOW);
  });

  it("an open restore breaker stays open: cold but unknown", () => {
    const d = kept(
      facts({
        runsc: gone,
        checkpointImage: true,
        checkpointDir: true,
        record: {
          kind: "ok",
          record: record({ thermal: "cold", status: "unknown", restoreError: "restore failed" }),
        },
      }),
    );
    expect(d.bucket).toBe("unknown");
    expect(d.record).toMatchObject({ thermal: "cold", status: "unknown", restoreError: "restore failed" });
  });

  it("not running and no checkpoint: unknown, an incomplete checkpoint.tmp discarded", () => {
    const d = kept(facts({ runsc: state("created"), checkpointTmp: "incomplete" }));
    expect(d.bucket).toBe("unknown");
    expect(d.record).toMatchObject({
      thermal: "cold",
      status: "unknown",
      restoreError: "sandbox was not running and has no checkpoint",
    });
    expect(d.cleanup).toEqual({
      killRunsc: true,
      stopLeftovers: true,
      checkpointTmp: "discard",
      removeCheckpoint: false,
    });
  });

  it("an earlier restore error is kept when there is no checkpoint", () => {
    const d = kept(
      facts({ runsc: gone, record: { kind: "ok", record: record({ restoreError: "earlier" }) } }),
    );
    expect(d.record.restoreError).toBe("earlier");
    expect(d.bucket).toBe("unknown");
  });

  it("never mutates the record it was given", () => {
    const r = record();
    const f = facts({ runsc: gone, record: { kind: "ok", record: r } });
    const before = structuredClone(r);
    classify(f, NOW);
    expect(r).toEqual(before);
  });
});
