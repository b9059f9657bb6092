// docs/agents.md, run as written (like quickstart.test.ts): every marked block runs in order
// against the real product, and the JSON the page shows (with placeholders for ids and times)
// must be what the CLI prints. BHATTI_DOCS_CAPTURE=FILE writes each block's real output there,
// to refresh the page's examples.
import { appendFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, startProduct } from "../thermal/product-harness.js";
import { missingOutput } from "./doc-blocks.js";
import { MINIMAL_IMAGE, docShell, minimalImageMissing, runBlocksOf } from "./doc-runner.js";

const blocks = runBlocksOf("agents.md");
const capture = process.env["BHATTI_DOCS_CAPTURE"];

if (minimalImageMissing) {
  process.stdout.write(`agents doc test skipped: ${MINIMAL_IMAGE} is missing (install.sh builds it)\n`);
}

describe.skipIf(minimalImageMissing)("docs/agents.md, run as written", () => {
  let product: Product;
  let shell: ReturnType<typeof docShell>;

  beforeAll(async () => {
    product = await startProduct({ flags: ["--default-image=minimal"] });
    shell = docShell(product);
    if (capture !== undefined) writeFileSync(capture, "");
  }, 180_000);
  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  it("has blocks to run", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  for (const block of blocks) {
    it(`block at docs/agents.md:${block.line} exits 0 and prints the JSON the page shows`, async () => {
      const result = await shell(block.script);
      if (capture !== undefined) appendFileSync(capture, `--- line ${block.line}\n${result.stdout}`);
      const context = `script:\n${block.script}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      expect(result.code, context).toBe(0);
      if (block.expect !== undefined) expect(missingOutput(block.expect, result.stdout), context).toEqual([]);
    }, 300_000);
  }
});
