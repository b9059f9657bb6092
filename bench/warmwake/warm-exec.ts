// Warm resume + exec via REST against hot REST exec, with the freeze driven on the vmm directly
// (no thermal tick to wait for): "spares expired" pauses after the agent client's spares have
// idled out (as with the default 30 s warm-after), "spares kept" right after an exec. With
// `--roots a,b` it runs one product per install root (a directory holding built bundles and a
// package.json named bhatti) side by side and alternates their samples, so that builds are
// compared under the same load.
//
//   node --conditions=source --import tsx bench/warmwake/warm-exec.ts [--n 20] [--idle-ms 5500] [--roots DIR,DIR]
import { loadavg } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";
import { type Product, exec, startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg("--n", 20);
const IDLE_MS = arg("--idle-ms", 5_500);
const rootsAt = process.argv.indexOf("--roots");
const roots = rootsAt >= 0 ? (process.argv[rootsAt + 1] ?? "").split(",") : [""];

interface Subject {
  label: string;
  product: Product;
  vmm: ServiceClient<typeof VmmService>;
  hot: string;
  warm: string;
  hotExec: number[];
  expired: number[];
  kept: number[];
}

const subjects: Subject[] = [];
try {
  for (const root of roots) {
    const product = await startProduct({
      flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h", "--thermal-tick=1s"],
      ...(root !== "" ? { serveBundle: join(root, "cli/dist/bhatti.mjs") } : {}),
    });
    const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
    const create = async (name: string, keepHot: boolean) => {
      const r = await product.http("POST", "/sandboxes", {
        body: { name, image: "busybox", keep_hot: keepHot },
      });
      if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
      return r.json<{ id: string }>().id;
    };
    const label = root === "" ? "this checkout" : basename(root);
    subjects.push({
      label,
      product,
      vmm,
      hot: await create("warm-exec-hot", true),
      warm: await create("warm-exec-warm", false),
      hotExec: [],
      expired: [],
      kept: [],
    });
  }
  const timedExec = async (s: Subject, id: string) => {
    const t = performance.now();
    const r = await exec(s.product, id, ["true"]);
    const ms = performance.now() - t;
    if (r.status !== 200 || r.body.exit_code !== 0)
      throw new Error(`exec: ${r.status} ${JSON.stringify(r.body)}`);
    return ms;
  };
  const freeze = async (s: Subject) => {
    await s.vmm.client.pauseSandbox({ id: s.warm });
    await waitForSandbox(s.product, s.warm, (x) => x.thermal === "warm", 10_000);
  };
  for (const s of subjects) {
    for (let k = 0; k < 5; k++) {
      await timedExec(s, s.hot);
      await timedExec(s, s.warm);
    }
  }
  const loads: number[] = [];
  for (let k = 0; k < N; k++) {
    await sleep(IDLE_MS);
    loads.push(loadavg()[0] ?? 0);
    // Alternate which build goes first.
    const order = k % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) await freeze(s);
    for (const s of order) {
      s.hotExec.push(await timedExec(s, s.hot));
      s.expired.push(await timedExec(s, s.warm));
    }
    for (const s of order) {
      await freeze(s);
      s.hotExec.push(await timedExec(s, s.hot));
      s.kept.push(await timedExec(s, s.warm));
    }
  }
  const load = loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length);
  report(
    `warm resume + exec via REST (gvisor, n=${N}, mean load ${load.toFixed(1)})`,
    "ms",
    subjects.flatMap((s) => [
      { name: `${s.label}: hot REST exec true`, samples: s.hotExec },
      { name: `${s.label}: warm REST exec, spares expired`, samples: s.expired },
      { name: `${s.label}: warm REST exec, spares kept`, samples: s.kept },
    ]),
  );
  // The slowest samples of each warm row, to tell a stray outlier from a pattern.
  for (const s of subjects) {
    const slow = (xs: number[]) =>
      [...xs]
        .sort((a, b) => b - a)
        .slice(0, 4)
        .map((x) => x.toFixed(0));
    console.log(
      `${s.label}: slowest warm samples: expired ${slow(s.expired).join(" ")}; kept ${slow(s.kept).join(" ")}`,
    );
  }
} finally {
  for (const s of subjects) {
    s.vmm.close();
    await s.product.dispose();
  }
}
