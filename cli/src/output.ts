import type { GlobalOptions } from "./global-options.js";

/** Pretty JSON on stdout (`--json`). Bigints (int64 fields) are printed as numbers. */
export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v), 2)}\n`,
  );
}

/** Left-aligned columns with a header row, like `bhatti ls`. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${[line(headers), ...rows.map(line)].join("\n")}\n`);
}

/** Prints `json` with `--json`, otherwise runs the human-readable printer. */
export function emit(options: GlobalOptions, json: unknown, human: () => void): void {
  if (options.json === true) printJson(json);
  else human();
}
