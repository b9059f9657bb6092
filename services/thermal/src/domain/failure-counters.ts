/**
 * Consecutive-failure counters per sandbox. A reset deletes the key rather than storing 0, so
 * the map only holds sandboxes that are failing, and a failure that lands after a reset starts
 * again from 1 instead of resurrecting the old count (v1 R27).
 */
export interface FailureCounters {
  /** Adds one failure and returns the new count. */
  increment(sandboxId: string): number;
  reset(sandboxId: string): void;
  get(sandboxId: string): number;
  /** Sandboxes with at least one failure. */
  size(): number;
}

export function createFailureCounters(): FailureCounters {
  const counts = new Map<string, number>();
  return {
    increment(sandboxId) {
      const n = (counts.get(sandboxId) ?? 0) + 1;
      counts.set(sandboxId, n);
      return n;
    },
    reset: (sandboxId) => void counts.delete(sandboxId),
    get: (sandboxId) => counts.get(sandboxId) ?? 0,
    size: () => counts.size,
  };
}
