// Image benchmarks (gvisor engine, hermetic registry on 127.0.0.1), each against a baseline
// measured in the same run:
// 1. pull of a ~60 MB image (busybox + Python's stdlib) through the image service vs plain
//    `skopeo copy` + `umoci raw unpack` (what it wraps);
// 2. `image save` of a sandbox holding a 256 MiB file, reported per GB, vs plain `cp -a` of the
//    same merged rootfs (no sync/freeze);
// 3. create + first exec from the pulled image vs from the `minimal` image (busybox when
//    minimal is not installed).
//
//   nice -n 10 node --conditions=source --import tsx bench/images/images-bench.ts [--n 5]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { createEngineImages } from "@bhatti/service-vmm/images";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { startRegistry } from "@bhatti/test/images/registry-fixture";
import { addDataLayer, buildTestImages, push } from "@bhatti/test/images/test-images";
import { report } from "../foundation/stats.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg("n", 5);
const SAVE_MB = arg("save-mb", 256);
const caller = { userId: "u-bench", admin: true, maxImages: 0 };

const env = await createGvisorTestEnv();
const engine = createGvisorEngine(env.options);
await engine.adopt();
const images = createEngineImages(engine, { taskTimeoutMs: 600_000 });
const work = mkdtempSync(join(tmpdir(), "bhatti-test-imgbench-"));
const reg = await startRegistry();
const time = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};
const sh = (file: string, args: string[]) => execFileSync(file, args, { stdio: ["ignore", "pipe", "pipe"] });

try {
  const lay = buildTestImages(work);
  const data = existsSync("/usr/lib/python3.11") ? "/usr/lib/python3.11" : "/usr/lib/python3";
  addDataLayer(work, lay, "v1", "big", data);
  const ref = `${reg.host}/bench/big:v1`;
  push(lay, "big", ref);
  const imageBytes = Number(execFileSync("du", ["-sb", data]).toString().split("\t")[0]);

  // 1. Pull: the service vs skopeo + umoci alone, alternating.
  const plain: number[] = [];
  const service: number[] = [];
  for (let i = 0; i < N; i++) {
    const d = join(work, `plain-${i}`);
    mkdirSync(d);
    plain.push(
      await time(async () => {
        sh("skopeo", [
          "copy",
          "--src-tls-verify=false",
          "--dest-compress",
          "--dest-compress-format",
          "gzip",
          `docker://${ref}`,
          `oci:${d}/oci:img`,
        ]);
        sh("umoci", ["raw", "unpack", "--image", `${d}/oci:img`, `${d}/rootfs`]);
      }),
    );
    rmSync(d, { recursive: true, force: true });
    service.push(
      await time(async () => {
        const t = images.service.pull(caller, {
          ref,
          name: `big${i}`,
          auth: "",
          platform: "",
          insecure: false,
        });
        const done = await images.tasks.settled(t.id);
        if (done.state !== "completed") throw new Error(done.error);
      }),
    );
    if (i > 0) images.service.remove(caller, `big${i}`);
  }
  report(`pull of a ${(imageBytes / 1e6).toFixed(0)} MB image from a local registry (n=${N})`, "ms", [
    { name: "skopeo copy + umoci unpack", samples: plain },
    { name: "image pull (task, inject, publish)", samples: service },
  ]);

  // 2. Save: a sandbox with SAVE_MB of data; plain cp -a of the merged rootfs vs image save.
  const sb = await engine.create(testSpec("big0", { userId: "u-bench", diskSizeMb: SAVE_MB + 512 }));
  const agent = await engine.agentClient(sb.id);
  try {
    const w = await agent.exec(
      ["sh", "-c", `dd if=/dev/urandom of=/workspace/blob bs=1M count=${SAVE_MB} 2>/dev/null && sync`],
      {
        timeoutMs: 300_000,
      },
    );
    if (w.exitCode !== 0) throw new Error(w.stderr.toString());
  } finally {
    agent.close();
  }
  const merged = join(env.stateDir, "sandboxes", sb.id, "rootfs");
  const savedBytes = Number(execFileSync("du", ["-sb", merged]).toString().split("\t")[0]);
  const cp: number[] = [];
  const save: number[] = [];
  const saveN = Math.max(2, Math.min(N, 3));
  for (let i = 0; i < saveN; i++) {
    const d = join(work, `cp-${i}`);
    mkdirSync(d);
    cp.push(await time(async () => sh("cp", ["-a", "--sparse=always", `${merged}/.`, `${d}/`])));
    rmSync(d, { recursive: true, force: true });
    save.push(
      await time(async () => {
        const t = images.service.save(caller, sb.id, `saved${i}`);
        const done = await images.tasks.settled(t.id);
        if (done.state !== "completed") throw new Error(done.error);
      }),
    );
    images.service.remove(caller, `saved${i}`);
  }
  const perGb = (s: number[]) => s.map((ms) => (ms * 1e9) / savedBytes);
  report(
    `save of a running sandbox, ${(savedBytes / 1e6).toFixed(0)} MB, scaled to ms per GB (n=${saveN})`,
    "ms",
    [
      { name: "cp -a of the merged view", samples: perGb(cp) },
      { name: "image save (sync, freeze, copy)", samples: perGb(save) },
    ],
  );
  await engine.destroy(sb.id);

  // 3. Create + first exec: from the system image vs from the pulled one.
  const base = existsSync(join(env.stateDir, "images", "minimal", "image.json")) ? "minimal" : "busybox";
  const createExec = async (image: string) =>
    time(async () => {
      const s = await engine.create(testSpec(image, { userId: "u-bench", diskSizeMb: 256 }));
      const c = await engine.agentClient(s.id);
      try {
        const r = await c.exec(["sh", "-c", "exit 0"]);
        if (r.exitCode !== 0) throw new Error(`first exec exited ${r.exitCode}`);
      } finally {
        c.close();
      }
      await engine.destroy(s.id);
    });
  const fromBase: number[] = [];
  const fromPulled: number[] = [];
  for (let i = 0; i < N; i++) {
    fromBase.push(await createExec(base));
    fromPulled.push(await createExec("big0"));
  }
  report(`create + first exec (n=${N}); the destroy is included in both`, "ms", [
    { name: `from ${base}`, samples: fromBase },
    { name: "from the pulled image", samples: fromPulled },
  ]);
  process.stdout.write(`\nload average at the end: ${execFileSync("cat", ["/proc/loadavg"]).toString()}`);
} finally {
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await engine.close();
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
  await env.teardown();
}
