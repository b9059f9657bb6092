import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { commandsWithoutExamples, fullProgram, renderCliReference } from "./cli-markdown.js";

// Regenerates docs/cli.md (`npm run docs:cli`).
const target = fileURLToPath(new URL("../../../docs/cli.md", import.meta.url));
const program = await fullProgram();
writeFileSync(target, renderCliReference(program));
process.stdout.write(`wrote ${target}\n`);
const missing = commandsWithoutExamples(program);
if (missing.length > 0) {
  process.stderr.write(
    `commands without an example (add them to cli/src/docs/command-examples.ts): ${missing.join(", ")}\n`,
  );
}
