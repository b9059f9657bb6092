export const DEFAULT_EXEC_TIMEOUT_SEC = 300;
export const MAX_EXEC_TIMEOUT_SEC = 86_400;

/** 1..86400 is used as given; anything else (absent, 0, negative, larger) is the 300 s default (v1). */
export function effectiveExecTimeoutSec(requested: unknown): number {
  if (typeof requested !== "number" || !Number.isFinite(requested)) return DEFAULT_EXEC_TIMEOUT_SEC;
  if (requested < 1 || requested > MAX_EXEC_TIMEOUT_SEC) return DEFAULT_EXEC_TIMEOUT_SEC;
  return Math.floor(requested);
}
