/**
 * Concurrent calls with the same key share one in-flight promise (wake coalescing). The key is
 * free again once that promise settles, so the next call starts afresh.
 */
export interface SingleFlight<T> {
  /** Joins the call in flight for the key, or starts `fn`. */
  do(key: string, fn: () => Promise<T>): Promise<T>;
  /** The call in flight for the key, if any (to join it without starting one). */
  get(key: string): Promise<T> | undefined;
  has(key: string): boolean;
  /** Every call in flight (to wait for them at shutdown). */
  values(): Promise<T>[];
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const inFlight = new Map<string, Promise<T>>();
  return {
    do(key, fn) {
      const existing = inFlight.get(key);
      if (existing) return existing;
      const p = fn().finally(() => inFlight.delete(key));
      inFlight.set(key, p);
      return p;
    },
    get: (key) => inFlight.get(key),
    has: (key) => inFlight.has(key),
    values: () => [...inFlight.values()],
  };
}
