import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxInfo } from "@bhatti/service-vmm/engine";
import { createTierEnv, noLeaks, reportSkip, type TierEnv, waitFor } from "./tier-harness.js";

// Docker Engine inside the docker tier under gVisor: dockerd comes up from the image's boot
// hook with the image's runsc settings (cgroupfs, tmpfs /var/lib/docker, --net-raw); a local
// `docker build` (FROM scratch + static busybox, no registry) runs, also after a cold cycle
// (checkpoint to disk, restore with the same settings).
const skip = reportSkip("docker");

const DOCKERFILE = 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n';

describe.skipIf(skip)("docker tier", () => {
  let t: TierEnv;
  let sb: SandboxInfo;

  beforeAll(async () => {
    t = await createTierEnv("docker");
    // The sandbox's own init runs after the image's boot hook, in the same session.
    sb = await t.create({ memoryMb: 2048, cpus: 2, init: "echo user-init-ran > /tmp/user-init" });
  }, 180_000);

  afterAll(async () => {
    if (!t) return;
    const leaks = await t.dispose();
    expect(leaks).toEqual(noLeaks(leaks));
  }, 120_000);

  it("dockerd answers after boot, with the image's cgroupfs and tmpfs storage", async () => {
    const info = await waitFor(
      "dockerd to answer",
      async () => {
        const r = await t.sh(sb.id, "docker info --format '{{.Driver}} {{.CgroupDriver}}'");
        return r.exitCode === 0 ? r.stdout.trim() : undefined;
      },
      60_000,
    );
    expect(info).toBe("overlay2 cgroupfs");
    const mounts = await t.sh(
      sb.id,
      "grep -E ' /sys/fs/cgroup | /var/lib/docker ' /proc/mounts | cut -d' ' -f2,3",
    );
    expect(mounts.stdout).toContain("/var/lib/docker tmpfs");
    expect(mounts.stdout).toContain("/sys/fs/cgroup");
    const init = await waitFor(
      "the sandbox's own init",
      async () => {
        const r = await t.sh(sb.id, "cat /tmp/user-init");
        return r.exitCode === 0 ? r.stdout.trim() : undefined;
      },
      30_000,
    );
    expect(init).toBe("user-init-ran");
  }, 90_000);

  it("docker build of a local image and docker run of it, as the sandbox user", async () => {
    const client = await t.agent(sb.id);
    try {
      await client.exec(["mkdir", "-p", "/workspace/img"]);
      await client.writeFile("/workspace/img/Dockerfile", DOCKERFILE);
      await client.writeFile("/workspace/img/busybox", readFileSync("/bin/busybox"), { mode: "0755" });
    } finally {
      client.close();
    }
    const build = await t.sh(
      sb.id,
      "cd /workspace/img && DOCKER_BUILDKIT=0 docker build -q -t bt-busybox . 2>&1",
    );
    expect(build.exitCode, build.stdout).toBe(0);
    const run = await t.sh(sb.id, "docker run --rm --network=none bt-busybox echo hello-from-docker 2>&1");
    expect(run.stdout.trim()).toBe("hello-from-docker");
    expect(run.exitCode).toBe(0);
  }, 120_000);

  it("after a cold cycle (checkpoint, restore) the image is still there and runs", async () => {
    const stopped = await t.engine.stop(sb.id);
    expect(stopped.thermal).toBe("cold");
    const started = await t.engine.start(sb.id);
    expect(started.thermal).toBe("hot");
    // The restored sandbox runs with the image's flag: the runsc processes of this sandbox say so.
    const runscArgs = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes("runsc") && l.includes(sb.id) && l.includes(" restore "));
    expect(runscArgs.length).toBeGreaterThan(0);
    for (const l of runscArgs) expect(l).toContain("--net-raw");
    const record = JSON.parse(readFileSync(join(t.env.stateDir, "sandboxes", sb.id, "engine.json"), "utf8"));
    expect(record.runsc.flags).toEqual(["--net-raw"]);
    const images = await t.sh(sb.id, "docker images --format '{{.Repository}}'");
    expect(images.stdout.split("\n")).toContain("bt-busybox");
    const run = await t.sh(
      sb.id,
      "docker run --rm --network=host bt-busybox sh -c 'echo after-restore' 2>&1",
    );
    expect(run.stdout.trim()).toBe("after-restore");
    expect(run.exitCode).toBe(0);
  }, 300_000);
});
