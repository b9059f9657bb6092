// REST exec with and without the agent's resident spawner, same run: two products side by side
// (`bhatti serve` each, gvisor, busybox), the second one's agent package without `spawner` (so its
// agents fork Node for every command), one keep-hot sandbox in each; `POST /sandboxes/:id/exec`
// of `true` interleaved one by one, then 10 concurrent execs per batch, interleaved batch by batch.
//
//   node --conditions=source --import tsx bench/spawner/rest-exec.ts [--n 60] [--batches 15]
import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { type Product, startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg("--n", 60);
const BATCHES = arg("--batches", 15);

const now = () => Number(process.hrtime.bigint()) / 1e6;
const timed = async (fn: () => Promise<unknown>) => {
  const t = now();
  await fn();
  return now() - t;
};

const products: Product[] = [];
try {
  const withSpawner = await startProduct({ flags: ["--log-level=warn"] });
  products.push(withSpawner);
  const withNode = await startProduct({ flags: ["--log-level=warn"] });
  products.push(withNode);
  // Before any sandbox exists: the package is bind-mounted as a directory, so this one's agents
  // find no spawner beside them.
  rmSync(join(withNode.env.stateDir, "agent", "spawner"));

  const create = async (p: Product) => {
    const r = await p.http("POST", "/sandboxes", {
      body: { name: "bench-rest", image: "busybox", keep_hot: true },
    });
    if (r.status !== 201) throw new Error(`create: HTTP ${r.status} ${r.text}`);
    return r.json<{ id: string }>().id;
  };
  const exec = async (p: Product, id: string, cmd: string[]) => {
    const r = await p.http("POST", `/sandboxes/${id}/exec`, { body: { cmd } });
    if (r.status !== 200) throw new Error(`exec: HTTP ${r.status} ${r.text}`);
    return r.json<{ exit_code: number; stdout: string }>();
  };
  const execTrue = async (p: Product, id: string) => {
    const r = await exec(p, id, ["true"]);
    if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
  };
  const a = await create(withSpawner);
  const b = await create(withNode);
  const parentOf = async (p: Product, id: string) =>
    (await exec(p, id, ["sh", "-c", "cat /proc/$PPID/comm"])).stdout.trim();
  for (let i = 0; (await parentOf(withSpawner, a)) !== "spawner"; i++) {
    if (i > 100) throw new Error("the first product's sandbox has no spawner");
    await new Promise((r) => setTimeout(r, 50));
  }
  if ((await parentOf(withNode, b)) === "spawner")
    throw new Error("the second product's sandbox has a spawner");
  for (let i = 0; i < 5; i++) {
    await execTrue(withSpawner, a);
    await execTrue(withNode, b);
  }

  const loadBefore = loadavg();
  const single: [number[], number[]] = [[], []];
  for (let k = 0; k < N; k++) {
    const order = k % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      single[i]!.push(await timed(() => (i === 0 ? execTrue(withSpawner, a) : execTrue(withNode, b))));
    }
  }
  const batches: [number[], number[]] = [[], []];
  for (let k = 0; k < BATCHES; k++) {
    const order = k % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      const [p, id] = i === 0 ? [withSpawner, a] : [withNode, b];
      batches[i]!.push(await timed(() => Promise.all(Array.from({ length: 10 }, () => execTrue(p, id)))));
    }
  }
  const loadAfter = loadavg();
  process.stdout.write(
    `load average before ${loadBefore.map((l) => l.toFixed(2)).join(" ")}, after ${loadAfter.map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  report("REST exec `true` (POST /sandboxes/:id/exec), two products, interleaved", "ms", [
    { name: "REST exec, resident spawner", samples: single[0] },
    { name: "REST exec, Node spawn", samples: single[1] },
  ]);
  report("REST, 10 concurrent execs of `true`, per batch", "ms", [
    { name: "batch, resident spawner", samples: batches[0] },
    { name: "batch, Node spawn", samples: batches[1] },
  ]);
} finally {
  for (const p of products) await p.dispose().catch(() => undefined);
}
