import { formatDuration } from "@bhatti/runtime/format-duration";
import { type SandboxView, dateOf } from "./sandbox-view.js";

/** A sandbox as `--json` prints it: the REST API's JSON, built by the function the gateway uses. */
export { sandboxJson } from "@bhatti/proto/rest-json";

/** "running (hot)", "stopped". */
export function statusText(s: SandboxView): string {
  return s.thermal !== "" && s.status === "running" ? `${s.status} (${s.thermal})` : s.status;
}

/**
 * What `inspect` prints after "thermal": "warm (since 2m15s ago)", for running and stopped
 * (cold) sandboxes; undefined when the server did not say.
 */
export function thermalText(s: SandboxView, now = Date.now()): string | undefined {
  if (s.thermal === "" || (s.status !== "running" && s.status !== "stopped")) return undefined;
  if (s.thermalSinceMs <= 0n) return s.thermal;
  return `${s.thermal} (since ${formatDuration(now - Number(s.thermalSinceMs))} ago)`;
}

/** "3m", "2h", "5d" since a time. */
export function age(s: SandboxView, now = Date.now()): string {
  if (s.createdAt === undefined) return "-";
  const sec = Math.max(0, Math.round((now - dateOf(s.createdAt).getTime()) / 1000));
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86_400) return `${Math.floor(sec / 3600)}h`;
  return `${Math.floor(sec / 86_400)}d`;
}
