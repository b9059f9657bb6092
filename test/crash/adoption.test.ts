import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHECKPOINT_COMPLETE,
  type GvisorEngine,
  QUARANTINE_DIR,
  createGvisorEngine,
  sandboxLayout,
} from "@bhatti/service-vmm/gvisor";
import {
  type GvisorTestEnv,
  createGvisorTestEnv,
  gvisorFactory,
  gvisorLeaks,
} from "../engine-conformance/gvisor-factory.js";
import { testSpec } from "../engine-conformance/engine-factory.js";

/**
 * What a restarted vmm does with the files a crash left (findings #10 and #26, untested mode 8):
 * real sandboxes under real runsc, then the files put in the state the crash would leave, then a
 * fresh engine over the same state dir adopts them.
 */
const skip = gvisorFactory.unavailable();

/**
 * A file of a quarantined sandbox, read without mounting anything: from its disk image with
 * debugfs (the sandbox's writable layer lives inside `disk.ext4`), or from the plain directory of
 * a sandbox made before per-sandbox disks.
 */
function quarantinedFile(dir: string, path: string): string {
  const image = join(dir, "disk.ext4");
  if (!existsSync(image)) return readFileSync(join(dir, path), "utf8");
  // The kernel releases a loop device asynchronously after the unmount; until then the image
  // file may not hold the last writes, so wait for the release (a condition, bounded).
  const deadline = Date.now() + 30_000;
  while (execFileSync("losetup", ["-j", image], { encoding: "utf8" }).trim() !== "") {
    if (Date.now() > deadline) throw new Error(`loop device of ${image} never released`);
    execFileSync("sleep", ["0.05"]);
  }
  return execFileSync("debugfs", ["-R", `cat /${path}`, image], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

describe.skipIf(skip !== undefined)("gvisor adoption after a crash", () => {
  let env: GvisorTestEnv;
  const engines: GvisorEngine[] = [];
  const fresh = () => {
    const e = createGvisorEngine(env.options);
    engines.push(e);
    return e;
  };
  const run = async (engine: GvisorEngine, id: string, script: string) => {
    const client = await engine.agentClient(id);
    try {
      const r = await client.exec(["sh", "-c", script]);
      return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout).toString("utf8") };
    } finally {
      client.close();
    }
  };

  beforeAll(async () => {
    env = await createGvisorTestEnv();
  });
  afterAll(async () => {
    try {
      const last = engines.at(-1);
      for (const s of last?.list() ?? []) await last?.destroy(s.id).catch(() => undefined);
      for (const e of engines) await e.close();
    } finally {
      await env.teardown();
    }
  });

  it("quarantines a sandbox whose engine.json is empty instead of deleting its data, and leaks nothing", async () => {
    const first = fresh();
    await first.adopt();
    const sb = await first.create(testSpec("busybox"));
    const wrote = await run(first, sb.id, 'echo keep-me > "$HOME/work.txt" && sync && echo "$HOME"');
    expect(wrote.exitCode).toBe(0);
    const home = wrote.stdout.trim();
    const layout = sandboxLayout(first.sandboxesDir, sb.id);
    // What a power loss after an unsynced rename leaves on some filesystems.
    writeFileSync(layout.record, "");

    const second = fresh();
    const report = await second.adopt();
    expect(report.removed).toContain(sb.id);
    expect(second.status(sb.id)).toBeUndefined();
    expect(existsSync(layout.dir)).toBe(false);
    const quarantined = readdirSync(join(second.sandboxesDir, QUARANTINE_DIR)).filter((d) =>
      d.startsWith(`${sb.id}-`),
    );
    expect(quarantined).toHaveLength(1);
    const kept = join(second.sandboxesDir, QUARANTINE_DIR, quarantined[0] as string);
    expect(quarantinedFile(kept, join("upper", home, "work.txt"))).toBe("keep-me\n");
    expect(readFileSync(join(kept, "QUARANTINED"), "utf8")).toMatch(/engine\.json unreadable: empty file/);
    // Nothing of it runs or stays wired: runsc, cgroup, mount, netns, veth.
    const leaks = await gvisorLeaks(env);
    expect(leaks.runsc).toEqual([]);
    expect(leaks.cgroups).toEqual([]);
    expect(leaks.mounts).toEqual([]);
    expect(leaks.netns).toEqual([]);
    expect(leaks.veths).toEqual([]);
    expect(leaks.dirs).toEqual([QUARANTINE_DIR]);
    // A second restart leaves the quarantine alone.
    const third = fresh();
    const again = await third.adopt();
    expect(again.removed).toEqual([]);
    expect(quarantinedFile(kept, join("upper", home, "work.txt"))).toBe("keep-me\n");
  });

  it("removes a directory whose create never wrote its record", async () => {
    const engine = fresh();
    const id = "00000000c0ffee01";
    const layout = sandboxLayout(engine.sandboxesDir, id);
    mkdirSync(layout.boot, { recursive: true });
    writeFileSync(layout.bootConfig, "{}");
    const report = await engine.adopt();
    expect(report.removed).toContain(id);
    expect(existsSync(layout.dir)).toBe(false);
  });

  it("promotes a complete checkpoint.tmp left by a crash between the kill and the rename; the sandbox restores with its state", async () => {
    const first = fresh();
    await first.adopt();
    const sb = await first.create(testSpec("busybox"));
    expect((await run(first, sb.id, 'echo before-crash > "$HOME/state.txt"')).exitCode).toBe(0);
    await first.stop(sb.id);
    const layout = sandboxLayout(first.sandboxesDir, sb.id);
    // Rewind to the crash point: the image still in checkpoint.tmp (marked complete), the record
    // still saying hot, the rootfs still mounted as it was before the unmount.
    renameSync(layout.checkpoint, layout.checkpointTmp);
    expect(existsSync(join(layout.checkpointTmp, CHECKPOINT_COMPLETE))).toBe(true);
    const record = JSON.parse(readFileSync(layout.record, "utf8")) as Record<string, unknown>;
    writeFileSync(
      layout.record,
      JSON.stringify({ ...record, status: "running", thermal: "hot", checkpointBytes: undefined }),
    );

    const second = fresh();
    const report = await second.adopt();
    expect(report.cold).toContain(sb.id);
    expect(second.status(sb.id)).toMatchObject({ status: "stopped", thermal: "cold" });
    expect(existsSync(join(layout.checkpoint, "checkpoint.img"))).toBe(true);
    expect(existsSync(layout.checkpointTmp)).toBe(false);
    await second.start(sb.id);
    const r = await run(second, sb.id, 'cat "$HOME/state.txt"');
    expect(r).toEqual({ exitCode: 0, stdout: "before-crash\n" });
    await second.destroy(sb.id);
  });

  it("discards an incomplete checkpoint.tmp (the crash came mid-checkpoint) and marks the sandbox unknown", async () => {
    const first = fresh();
    await first.adopt();
    const sb = await first.create(testSpec("busybox"));
    await first.stop(sb.id);
    const layout = sandboxLayout(first.sandboxesDir, sb.id);
    renameSync(layout.checkpoint, layout.checkpointTmp);
    // No completion marker: runsc may have written half an image.
    renameSync(join(layout.checkpointTmp, CHECKPOINT_COMPLETE), join(layout.dir, "marker.saved"));
    const record = JSON.parse(readFileSync(layout.record, "utf8")) as Record<string, unknown>;
    writeFileSync(layout.record, JSON.stringify({ ...record, status: "running", thermal: "hot" }));

    const second = fresh();
    const report = await second.adopt();
    expect(report.unknown).toContain(sb.id);
    expect(second.status(sb.id)?.status).toBe("unknown");
    expect(existsSync(layout.checkpointTmp)).toBe(false);
    // Still a sandbox the user can destroy, and destroying it leaves nothing.
    expect(await second.destroy(sb.id)).toBe(true);
    expect(existsSync(layout.dir)).toBe(false);
  });
});
