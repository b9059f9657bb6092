import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  cleanupServe,
  makeTestDir,
  runCli,
  type ServeInstance,
  startServe,
  waitAllHealthy,
} from "../foundation/serve-harness.js";
import { tierImageDir, TIERS_STATE_DIR } from "./tier-harness.js";

// The server discovers tiers in its images dir: no registration step. A product with the built
// tiers in its images dir lists them (with size and description) in `bhatti image list`.
const TIERS = ["browser", "docker", "computer"];
const built = TIERS.filter((t) => existsSync(join(tierImageDir(t), "image.json")));
if (built.length === 0)
  console.log(`test/tiers: skipping the image list: no tier built in ${TIERS_STATE_DIR}`);

describe.skipIf(built.length === 0 || process.getuid?.() !== 0)("tiers in the product's image list", () => {
  let dir: string | undefined;
  const instances: ServeInstance[] = [];

  afterAll(async () => {
    if (dir) await cleanupServe(dir, instances);
  }, 60_000);

  it("bhatti image list shows every built tier with its size and description", async () => {
    dir = makeTestDir();
    const images = join(dir, "state", "images");
    mkdirSync(images, { recursive: true });
    for (const t of built) symlinkSync(tierImageDir(t), join(images, t));
    const serve = await startServe({ dir });
    instances.push(serve);
    await waitAllHealthy(serve);
    const r = await runCli(["image", "list", "--json", "--url", serve.url], serve.cliEnv);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; size_bytes: number; description: string }[];
    for (const t of built) {
      const row = rows.find((i) => i.name === t);
      expect(row, `${t} listed`).toBeDefined();
      expect(row?.size_bytes).toBeGreaterThan(100 * 1024 * 1024);
      expect(row?.description).toMatch(/^minimal \+ /);
    }
    const table = await runCli(["image", "list", "--url", serve.url], serve.cliEnv);
    console.log(table.stdout);
  }, 120_000);
});
