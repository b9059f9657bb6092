import { Code, ConnectError } from "@connectrpc/connect";

export const DEFAULT_EXEC_TIMEOUT_SEC = 300;
export const MAX_EXEC_TIMEOUT_SEC = 86_400;

/**
 * Absent, null or 0 is the 300 s default; 1..86400 is used as given (whole seconds). Anything
 * else (negative, larger, not a number) is InvalidArgument: v1 silently used 300 s for a larger
 * value, which hides a client's mistake until the command is cut off.
 */
export function effectiveExecTimeoutSec(requested: unknown): number {
  if (requested === undefined || requested === null || requested === 0) return DEFAULT_EXEC_TIMEOUT_SEC;
  if (
    typeof requested !== "number" ||
    !Number.isFinite(requested) ||
    requested < 1 ||
    requested > MAX_EXEC_TIMEOUT_SEC
  ) {
    throw new ConnectError(
      `timeout_sec must be between 1 and ${MAX_EXEC_TIMEOUT_SEC} (absent or 0: ${DEFAULT_EXEC_TIMEOUT_SEC})`,
      Code.InvalidArgument,
    );
  }
  return Math.floor(requested);
}
