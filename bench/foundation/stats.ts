/** Percentiles of a sample, in the unit it was measured in. */
export function percentiles(samples: readonly number[]): {
  p50: number;
  p95: number;
  p99: number;
  n: number;
} {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), n: sorted.length };
}

/** Prints one line per measurement and the p50 ratio of each against the baseline (the first). */
export function report(
  title: string,
  unit: "ms" | "µs",
  rows: readonly { name: string; samples: readonly number[] }[],
): void {
  const fmt = (v: number) => (unit === "µs" ? v.toFixed(0) : v.toFixed(1)).padStart(8);
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(
    `${"".padEnd(34)}${"p50".padStart(8)}${"p95".padStart(8)}${"p99".padStart(8)}   n   ×baseline(p50)\n`,
  );
  const base = percentiles(rows[0]?.samples ?? []).p50;
  for (const [i, row] of rows.entries()) {
    const p = percentiles(row.samples);
    const ratio = i === 0 ? "baseline" : `${(p.p50 / base).toFixed(2)}×`;
    process.stdout.write(
      `${`${row.name} (${unit})`.padEnd(34)}${fmt(p.p50)}${fmt(p.p95)}${fmt(p.p99)}  ${String(p.n).padStart(4)}   ${ratio}\n`,
    );
  }
}
