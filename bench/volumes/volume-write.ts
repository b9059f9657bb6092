import { loadavg } from "node:os";
import { percentiles, report } from "../foundation/stats.js";
import { type Product, exec, startProduct } from "@bhatti/test/thermal/product-harness";

/**
 * Volume write throughput against the sandbox's own disk, in the same sandbox and run: `dd` of
 * SIZE_MB MiB with `conv=fsync` (so the time includes getting the data to the host's disk),
 * alternating the two targets, SAMPLES times each. The own disk (overlay upper on the sandbox's
 * ext4 loop image) is the baseline; the volume is an ext4 loop image bound in by the gofer.
 * Run as root: nice node --conditions=source --import tsx bench/volumes/volume-write.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 5);
const SIZE_MB = Number(process.env["SIZE_MB"] ?? 256);

/**
 * Milliseconds of one `dd … conv=fsync` exec, timed on the host (busybox `date` has no %N); the
 * exec round trip (a few ms) is in both rows alike. Removing the old file and syncing is a
 * separate exec, outside the time.
 */
async function timedWrite(product: Product, id: string, path: string): Promise<number> {
  const clean = await exec(product, id, ["sh", "-c", `rm -f ${path}; sync`]);
  if (clean.body.exit_code !== 0) throw new Error(`rm ${path}: ${JSON.stringify(clean.body)}`);
  const t0 = performance.now();
  const r = await exec(product, id, [
    "sh",
    "-c",
    `dd if=/dev/zero of=${path} bs=1M count=${SIZE_MB} conv=fsync 2>&1`,
  ]);
  const ms = performance.now() - t0;
  if (r.status !== 200 || r.body.exit_code !== 0)
    throw new Error(`dd to ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return ms;
}

const product = await startProduct({ flags: [] });
try {
  const vol = await product.http("POST", "/volumes", { body: { name: "bench", size_mb: SIZE_MB * 2 } });
  if (vol.status !== 201) throw new Error(`volume: ${vol.status} ${vol.text}`);
  const sb = await product.http("POST", "/sandboxes", {
    body: {
      name: "bench-vol",
      image: "busybox",
      keep_hot: true,
      volumes: [{ name: "bench", mount: "/vol" }],
    },
  });
  if (sb.status !== 201) throw new Error(`sandbox: ${sb.status} ${sb.text}`);
  const id = sb.json<{ id: string }>().id;
  const own: number[] = [];
  const volume: number[] = [];
  // One warm-up of each, not counted (first-touch allocation of the sparse images).
  await timedWrite(product, id, "$HOME/w");
  await timedWrite(product, id, "/vol/w");
  for (let i = 0; i < SAMPLES; i++) {
    own.push(await timedWrite(product, id, "$HOME/w"));
    volume.push(await timedWrite(product, id, "/vol/w"));
  }
  const [l1, l5, l15] = loadavg().map((l) => l.toFixed(2));
  process.stdout.write(
    `# bench/volumes/volume-write.ts, ${new Date().toISOString()}, load average ${l1} ${l5} ${l15}, ${SAMPLES} samples, dd ${SIZE_MB} MiB conv=fsync\n`,
  );
  report(`dd ${SIZE_MB} MiB + fsync inside one sandbox (exec timed on the host)`, "ms", [
    { name: "own disk (overlay upper)", samples: own },
    { name: "volume (rw bind)", samples: volume },
  ]);
  const mbps = (ms: number) => ((SIZE_MB / ms) * 1000).toFixed(0);
  const o = percentiles(own).p50;
  const v = percentiles(volume).p50;
  process.stdout.write(
    `throughput p50: own disk ${mbps(o)} MiB/s, volume ${mbps(v)} MiB/s (volume/own ${(o / v).toFixed(2)}×)\n`,
  );
} finally {
  await product.dispose();
}
