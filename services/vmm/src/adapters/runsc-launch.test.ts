// The launcher's start gate (LaunchOptions.start), with the real launcher (tini, sh, unshare, the
// sandbox's unified cgroup) and a stand-in "runsc" script that records that it ran: the launcher
// joins the cgroup at once, runs runsc only after the go, and a cancelled start ends it without
// running runsc, leaving the cgroup empty.
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createSandboxCgroups } from "./cgroups.js";
import { createRunsc } from "./runsc.js";

const run = randomBytes(3).toString("hex");
const parent = `bhatti-test/${run}`;
const dir = mkdtempSync(join(tmpdir(), "bhatti-test-launch-"));
const cgroups = createSandboxCgroups({ parent });
// Writes its argv to <dir>/ran-<last arg> (the container id) and exits 0, as `run --detach` does.
const fakeRunsc = join(dir, "fake-runsc");
writeFileSync(fakeRunsc, `#!/bin/sh\nfor a; do last="$a"; done\necho "$@" > "${dir}/ran-$last"\n`);
chmodSync(fakeRunsc, 0o755);
const runsc = createRunsc({
  path: fakeRunsc,
  tiniPath: "/usr/bin/tini",
  root: join(dir, "root"),
  platform: "ptrace",
});
const ids: string[] = [];

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function newSandbox() {
  const id = randomBytes(8).toString("hex");
  ids.push(id);
  return { id, procs: cgroups.ensureUnified(id), log: join(dir, `${id}.log`), ran: join(dir, `ran-${id}`) };
}

afterEach(async () => {
  for (const id of ids.splice(0)) {
    await cgroups.kill(id);
    await cgroups.remove(id);
  }
});

afterAll(() => {
  try {
    rmdirSync(join("/sys/fs/cgroup/unified", parent));
  } catch {
    // never created, or already gone
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("runsc launch with a start gate", () => {
  it("joins the sandbox cgroup at once and runs runsc only after the go", async () => {
    const sb = newSandbox();
    let go = () => {};
    const start = new Promise<void>((resolve) => {
      go = resolve;
    });
    const launched = runsc.run(sb.id, join(dir, "bundle"), {
      cgroupProcs: [sb.procs],
      logFile: sb.log,
      start,
    });
    // The launcher (tini and its shell) is in the cgroup before the go ...
    await until("the launcher in the cgroup", () => cgroups.pids(sb.id).length >= 2);
    // ... and waits there: runsc has not run, the launch has not settled.
    let settled = false;
    void launched.finally(() => {
      settled = true;
    });
    await sleep(200);
    expect(existsSync(sb.ran)).toBe(false);
    expect(settled).toBe(false);
    go();
    await launched;
    expect(readFileSync(sb.ran, "utf8")).toContain(`run --detach --bundle=${join(dir, "bundle")} ${sb.id}`);
  });

  it("a cancelled start: the launch fails, runsc never runs and the cgroup empties", async () => {
    const sb = newSandbox();
    let cancel = (_: Error) => {};
    const start = new Promise<void>((_, reject) => {
      cancel = reject;
    });
    const launched = runsc.restore(sb.id, join(dir, "bundle"), join(dir, "image"), {
      cgroupProcs: [sb.procs],
      logFile: sb.log,
      start,
    });
    await until("the launcher in the cgroup", () => cgroups.pids(sb.id).length >= 2);
    cancel(new Error("preparation failed"));
    await expect(launched).rejects.toThrow(/cancelled before runsc started/);
    await until("an empty cgroup", () => cgroups.pids(sb.id).length === 0);
    expect(existsSync(sb.ran)).toBe(false);
  });

  it("without a gate runsc runs at once, as before", async () => {
    const sb = newSandbox();
    await runsc.run(sb.id, join(dir, "bundle"), { cgroupProcs: [sb.procs], logFile: sb.log });
    expect(readFileSync(sb.ran, "utf8")).toContain(sb.id);
    // The launcher stays as the sandbox's reaping parent.
    expect(cgroups.pids(sb.id).length).toBeGreaterThan(0);
  });
});
