import type { ServerConfig } from "./config.js";

/**
 * The deadline of a Health call made to decide readiness (`bhatti serve` status, the vmm's
 * dependency facts). Health answers from memory, so a process that has not answered within this
 * is reported not up instead of holding a status line or a Health answer for the whole
 * `rpc_timeout`. Never longer than `rpc_timeout`.
 */
export const HEALTH_PROBE_TIMEOUT_MS = 1_000;

/** `HEALTH_PROBE_TIMEOUT_MS` (or `capMs`), bounded by the configured `rpc_timeout`. */
export function healthProbeTimeoutMs(
  config: Pick<ServerConfig, "rpc_timeout">,
  capMs: number = HEALTH_PROBE_TIMEOUT_MS,
): number {
  return Math.min(config.rpc_timeout, capMs);
}
