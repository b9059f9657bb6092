// The seed-table rows whose requests cross services (gateway → thermal/vmm/store), measured on two
// products running side by side from the same build: one whose services talk HTTP/2
// (BHATTI_RPC_HTTP_VERSION=2, the transport before issue 15) and one on HTTP/1.1 (the product's).
// Rounds alternate which product goes first, so machine noise hits both alike.
//   node --conditions=source --import tsx bench/h1rpc/cross-service-rows.ts [--n 30]
// (as root; the bundles must be built: node scripts/build.mjs)
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { type HttpResult, type Product, startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const nIndex = process.argv.indexOf("--n");
const N = nIndex >= 0 ? Number(process.argv[nIndex + 1]) : 30;
const la = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

const flags = [
  "--log-level=warn",
  "--thermal-warm-after=300ms",
  "--thermal-cold-after=1h",
  "--thermal-tick=50ms",
];
const variants = [
  { name: "HTTP/2 (BHATTI_RPC_HTTP_VERSION=2)", env: { BHATTI_RPC_HTTP_VERSION: "2" } },
  { name: "HTTP/1.1 (product)", env: { BHATTI_RPC_HTTP_VERSION: "1.1" } },
] as const;

const ok = async (p: Promise<HttpResult>, want = 200) => {
  const r = await p;
  if (r.status !== want) throw new Error(`unexpected HTTP ${r.status}: ${r.text.slice(0, 300)}`);
  return r;
};
const time = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

interface Rig {
  readonly product: Product;
  readonly hot: string;
  readonly warm: string;
  readonly samples: Record<string, number[]>;
}

const create = async (product: Product, name: string, keepHot: boolean) =>
  (
    await ok(product.http("POST", "/sandboxes", { body: { name, image: "busybox", keep_hot: keepHot } }), 201)
  ).json<{ id: string }>().id;
const exec = async (product: Product, id: string) => {
  const r = await ok(product.http("POST", `/sandboxes/${id}/exec`, { body: { cmd: ["true"] } }));
  if (r.json<{ exit_code: number }>().exit_code !== 0) throw new Error("exec failed");
};
const waitWarm = async (product: Product, id: string) => {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await ok(product.http("GET", `/sandboxes/${id}`));
    if (r.json<{ thermal?: string }>().thermal === "warm") return;
    if (Date.now() > deadline) throw new Error(`${id} never became warm`);
    await sleep(25);
  }
};

console.log(`load average at start: ${la()}`);
const rigs: Rig[] = [];
try {
  for (const v of variants) {
    // The harness's own thermal client (made while it waits for health) reads it from this process.
    process.env["BHATTI_RPC_HTTP_VERSION"] = v.env.BHATTI_RPC_HTTP_VERSION;
    const product = await startProduct({ flags, env: v.env });
    const rig: Rig = {
      product,
      hot: await create(product, "rpc-hot", true),
      warm: await create(product, "rpc-warm", false),
      samples: { exec: [], get: [], warm: [], create: [] },
    };
    rigs.push(rig);
    for (let i = 0; i < 10; i++) await exec(product, rig.hot);
  }
  for (let round = 0; round < N; round++) {
    const order = round % 2 === 0 ? rigs : [...rigs].reverse();
    for (const rig of order) {
      const { product, samples } = rig;
      samples["exec"]?.push(await time(() => exec(product, rig.hot)));
      samples["get"]?.push(await time(() => ok(product.http("GET", `/sandboxes/${rig.hot}`))));
      await waitWarm(product, rig.warm);
      samples["warm"]?.push(await time(() => exec(product, rig.warm)));
      let id = "";
      samples["create"]?.push(
        await time(async () => {
          id = await create(product, `rpc-c${round}`, true);
          await exec(product, id);
        }),
      );
      await ok(product.http("DELETE", `/sandboxes/${id}`));
    }
  }
  const rows: [string, string][] = [
    ["exec", "REST exec true, hot (no service call: control)"],
    ["get", "REST GET /sandboxes/:id, hot"],
    ["warm", "warm resume + exec true"],
    ["create", "create + first exec"],
  ];
  for (const [key, title] of rows) {
    report(
      title,
      "ms",
      rigs.map((rig, k) => ({ name: variants[k]?.name ?? "?", samples: rig.samples[key] ?? [] })),
    );
  }
  console.log(`\nload average at end: ${la()}`);
} finally {
  for (const rig of rigs) await rig.product.dispose();
}
