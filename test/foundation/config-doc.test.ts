import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderConfigReference } from "@bhatti/runtime";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./serve-harness.js";

describe("docs/configuration.md", () => {
  it("is the current output of renderConfigReference() (run `npm run docs:config` after adding a key)", () => {
    const committed = readFileSync(join(repoRoot, "docs/configuration.md"), "utf8");
    expect(committed).toBe(renderConfigReference());
  });
});
