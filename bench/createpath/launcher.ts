import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createSandboxCgroups } from "../../services/vmm/src/adapters/cgroups.js";
import { createRunsc } from "../../services/vmm/src/adapters/runsc.js";
import { report } from "../foundation/stats.js";

/**
 * What the launcher (services/vmm/src/adapters/runsc.ts: tini, sh, the sandbox's cgroup join,
 * the log fifo, unshare) adds to a create's critical path, with the product's own launch code
 * and a stand-in runsc that exits at once, SAMPLES samples of each order, alternated:
 *   - before: the preparation (a PREPARE_MS wait standing for disk copy, mount and network),
 *     then the launch (the order before this change);
 *   - gated: the launch started with a start gate, the preparation meanwhile, then the go.
 * Each sample is the time from the end of the preparation until the launch resolved (runsc's
 * exit status came back): what the create waits for beyond its own preparation.
 * Run as root, without nice: node --conditions=source --import tsx bench/createpath/launcher.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 30);
const PREPARE_MS = Number(process.env["PREPARE_MS"] ?? 25);

const run = randomBytes(3).toString("hex");
const parent = `bhatti-test/${run}`;
const dir = mkdtempSync(join(tmpdir(), "bhatti-test-launchbench-"));
const cgroups = createSandboxCgroups({ parent });
const fakeRunsc = join(dir, "fake-runsc");
writeFileSync(fakeRunsc, "#!/bin/sh\nexit 0\n");
chmodSync(fakeRunsc, 0o755);
const runsc = createRunsc({
  path: fakeRunsc,
  tiniPath: "/usr/bin/tini",
  root: join(dir, "root"),
  platform: "ptrace",
});

async function sample(gated: boolean): Promise<number> {
  const id = randomBytes(8).toString("hex");
  const procs = cgroups.ensureUnified(id);
  try {
    const options = { cgroupProcs: [procs], logFile: join(dir, `${id}.log`) };
    let prepared: number;
    if (gated) {
      let go = () => {};
      const start = new Promise<void>((resolve) => {
        go = resolve;
      });
      const launched = runsc.run(id, join(dir, "bundle"), { ...options, start });
      await sleep(PREPARE_MS);
      prepared = performance.now();
      go();
      await launched;
    } else {
      await sleep(PREPARE_MS);
      prepared = performance.now();
      await runsc.run(id, join(dir, "bundle"), options);
    }
    return performance.now() - prepared;
  } finally {
    await cgroups.kill(id);
    await cgroups.remove(id);
  }
}

try {
  const before: number[] = [];
  const gated: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    before.push(await sample(false));
    gated.push(await sample(true));
  }
  const [l1, l5] = loadavg();
  process.stdout.write(`\nhost load average ${l1?.toFixed(2)} / ${l5?.toFixed(2)} (1 / 5 min)\n`);
  report(
    `launcher on the critical path after a ${PREPARE_MS} ms preparation (${SAMPLES} samples each, alternated)`,
    "ms",
    [
      { name: "before: prepare, then launch", samples: before },
      { name: "gated: launch ∥ prepare, go", samples: gated },
    ],
  );
} finally {
  try {
    rmdirSync(join("/sys/fs/cgroup/unified", parent));
  } catch {
    // never created
  }
  rmSync(dir, { recursive: true, force: true });
}
