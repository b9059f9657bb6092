// docs/quickstart.md, run as written: every block marked `<!-- quickstart: run -->` runs in order
// (bash -e) against the real product (`bhatti serve` with its own state dir, sockets and netns,
// the minimal image install.sh builds), and each block's exit status and the output the page
// shows are checked. The page cannot rot without this test failing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, startProduct } from "../thermal/product-harness.js";
import { missingOutput } from "./doc-blocks.js";
import { MINIMAL_IMAGE, docShell, minimalImageMissing, runBlocksOf } from "./doc-runner.js";

const blocks = runBlocksOf("quickstart.md");

if (minimalImageMissing) {
  process.stdout.write(`quickstart test skipped: ${MINIMAL_IMAGE} is missing (install.sh builds it)\n`);
}

describe.skipIf(minimalImageMissing)("docs/quickstart.md, run as written", () => {
  let product: Product;
  let shell: ReturnType<typeof docShell>;

  beforeAll(async () => {
    // The doc creates sandboxes from the default image, as a real install does.
    product = await startProduct({ flags: ["--default-image=minimal"] });
    shell = docShell(product);
  }, 180_000);
  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  it("has blocks to run", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(6);
  });

  // One test per block, in order: a failure names the block's line in the page.
  for (const block of blocks) {
    it(`block at docs/quickstart.md:${block.line} exits 0 and prints what the page shows`, async () => {
      const result = await shell(block.script);
      const context = `script:\n${block.script}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      expect(result.code, context).toBe(0);
      if (block.expect !== undefined) expect(missingOutput(block.expect, result.stdout), context).toEqual([]);
    }, 300_000);
  }

  it("bhatti admin status --json carries host memory and disk, sandboxes per status and image storage", async () => {
    const status = await shell("bhatti admin status --json");
    expect(status.code, status.stderr).toBe(0);
    const body = JSON.parse(status.stdout) as {
      host: {
        mem_total_mb: number;
        mem_available_mb: number;
        disk_total_mb: number;
        disk_available_mb: number;
      };
      images: { count: number; total_bytes: number };
      sandboxes_by_status: Record<string, number>;
    };
    expect(body.host.mem_total_mb).toBeGreaterThan(0);
    expect(body.host.mem_available_mb).toBeLessThanOrEqual(body.host.mem_total_mb);
    expect(body.host.disk_total_mb).toBeGreaterThan(0);
    // busybox and minimal are in the test's images dir; minimal alone is over 100 MB.
    expect(body.images.count).toBeGreaterThanOrEqual(2);
    expect(body.images.total_bytes).toBeGreaterThan(100 * 1024 * 1024);
    expect(body.sandboxes_by_status).toEqual({});
  });

  it("bhatti destroy asks on a terminal: 'n' keeps the sandbox, 'y' destroys it", async () => {
    expect((await shell("bhatti create --name tty-check >/dev/null")).code).toBe(0);
    // script(1) gives the CLI a terminal; the answer comes through it.
    const no = await shell("echo n | script -qec 'bhatti destroy tty-check' /dev/null");
    expect(no.code, no.stdout).toBe(1);
    expect(no.stdout).toContain("destroy sandbox tty-check and everything in it? [y/N]");
    expect(no.stdout).toContain("cancelled");
    expect((await shell("bhatti inspect tty-check >/dev/null")).code).toBe(0);
    const yes = await shell("echo y | script -qec 'bhatti destroy tty-check' /dev/null");
    expect(yes.code, yes.stdout).toBe(0);
    expect(yes.stdout).toContain("destroyed tty-check");
    expect((await shell("bhatti inspect tty-check")).code).toBe(1);
  }, 120_000);
});
