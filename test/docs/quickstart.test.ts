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
});
