/**
 * "2h15m30s", "1m0s", "45s": a duration rounded to seconds, like Go's `time.Duration`, as v1
 * printed it (the gateway's /health uptime, the CLI's ages and uptimes).
 */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
