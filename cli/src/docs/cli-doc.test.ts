import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { commandTable } from "../command-table.js";
import {
  commandPath,
  commandsWithoutExamples,
  fullProgram,
  renderCliReference,
  visibleCommands,
} from "./cli-markdown.js";

const committedPath = fileURLToPath(new URL("../../../docs/cli.md", import.meta.url));

describe("docs/cli.md", () => {
  it("is the current rendering of the commander definitions (run `npm run docs:cli` after changing a command)", async () => {
    expect(readFileSync(committedPath, "utf8")).toBe(renderCliReference(await fullProgram()));
  });

  it("every command has an example in cli/src/docs/command-examples.ts", async () => {
    expect(commandsWithoutExamples(await fullProgram())).toEqual([]);
  });

  it("documents every top-level command of the command table, and no hidden one", async () => {
    const documented = new Set(visibleCommands(await fullProgram()).map(commandPath));
    const topLevel = [...new Set(commandTable.map((e) => e.names[0] ?? ""))].filter(
      (n) => !n.startsWith("__"),
    );
    expect(topLevel.filter((n) => !documented.has(`bhatti ${n}`))).toEqual([]);
    expect([...documented].filter((p) => p.includes("__"))).toEqual([]);
    const text = readFileSync(committedPath, "utf8");
    for (const path of documented) expect(text).toContain(`\`${path}\``);
  });

  it("shows each flag with its default as commander defines it", () => {
    const text = readFileSync(committedPath, "utf8");
    // file write --mode has the default "0644" and file ls's path defaults to /workspace.
    expect(text).toContain('| `--mode <octal>` | permissions | `"0644"` |');
    expect(text).toContain('| `[path]` | no | directory | `"/workspace"` |');
  });
});
