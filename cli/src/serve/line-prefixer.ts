import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";

/** Copies `input` to `output` line by line, each line prefixed with `name | `; keeps the last lines. */
export function prefixLines(
  input: Readable,
  output: Writable,
  name: string,
  keep: string[],
  keepCount = 5,
): void {
  const prefix = `${name.padEnd(7)} | `;
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  lines.on("line", (line) => {
    output.write(`${prefix}${line}\n`);
    keep.push(line);
    if (keep.length > keepCount) keep.shift();
  });
}
