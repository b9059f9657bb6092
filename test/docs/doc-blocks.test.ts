import { describe, expect, it } from "vitest";
import { missingOutput, parseDocBlocks } from "./doc-blocks.js";

describe("doc blocks", () => {
  it("pairs run blocks with the expect block after them and keeps skip reasons", () => {
    const md = [
      "<!-- quickstart: skip: needs root -->",
      "```sh",
      "sudo ./install.sh",
      "```",
      "<!-- quickstart: run -->",
      "```sh",
      "bhatti version",
      "```",
      "text",
      "<!-- quickstart: expect -->",
      "```text",
      "bhatti <version>",
      "```",
      "```json",
      "{}",
      "```",
    ].join("\n");
    expect(parseDocBlocks(md)).toEqual([
      { kind: "skip", line: 2, reason: "needs root" },
      { kind: "run", line: 6, script: "bhatti version", expect: "bhatti <version>" },
    ]);
  });

  it("refuses an unmarked sh block, a skip without a reason and a stray expect", () => {
    expect(() => parseDocBlocks("```sh\nls\n```")).toThrow(/without a quickstart marker/);
    expect(() => parseDocBlocks("<!-- quickstart: skip -->\n```sh\nls\n```")).toThrow(/must say why/);
    expect(() => parseDocBlocks("<!-- quickstart: expect -->\n```text\nx\n```")).toThrow(/must follow a run/);
  });

  it("matches expected lines in order, with placeholders and any spacing", () => {
    const out = "id     ab12\nname   dev\nstatus running\n";
    expect(missingOutput("id <id>\nstatus running", out)).toEqual([]);
    expect(missingOutput("status running\nname dev", out)).toEqual(["name dev"]);
    expect(missingOutput("<h1>hi</h1>", "<h1>hi</h1>\n")).toEqual([]);
    expect(missingOutput("name prod", out)).toEqual(["name prod"]);
  });
});
