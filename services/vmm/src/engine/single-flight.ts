/** Concurrent calls with the same key share one in-flight promise (wake coalescing). */
export interface SingleFlight<T> {
  do(key: string, fn: () => Promise<T>): Promise<T>;
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
  };
}
