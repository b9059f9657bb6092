/** Per-source limits of one resolver (a source is a sandbox address on the user's bridge). */
export interface SourceLimits {
  /** Sustained queries per second. */
  queriesPerSecond: number;
  /** Queries a quiet source may send at once. */
  burst: number;
  /** Forwarded queries of one source waiting for an upstream at once. */
  maxInFlight: number;
  /** Open TCP connections of one source. */
  maxTcpConnections: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = {
  queriesPerSecond: 100,
  burst: 200,
  maxInFlight: 32,
  maxTcpConnections: 8,
};

interface SourceState {
  tokens: number;
  refilledAt: number;
  inFlight: number;
  connections: number;
}

export interface SourceLimiter {
  /** Takes one query token; false when the source is over its rate. */
  take(source: string): boolean;
  /** Takes a forwarding slot; false when the source has too many queries upstream. */
  acquire(source: string): boolean;
  release(source: string): void;
  openConnection(source: string): boolean;
  closeConnection(source: string): void;
  /** Sources tracked (bounded by `maxSources`). */
  size(): number;
}

/**
 * Token bucket and counters per source, in a map that never holds more than `maxSources`
 * entries: idle sources (full bucket, nothing open) are forgotten first, and when every entry
 * is busy a new source is refused rather than growing the map.
 */
export function createSourceLimiter(
  limits: SourceLimits,
  maxSources = 4096,
  now: () => number = () => performance.now(),
): SourceLimiter {
  const states = new Map<string, SourceState>();

  function refill(s: SourceState, t: number): void {
    s.tokens = Math.min(limits.burst, s.tokens + ((t - s.refilledAt) / 1000) * limits.queriesPerSecond);
    s.refilledAt = t;
  }

  function stateOf(source: string): SourceState | undefined {
    const existing = states.get(source);
    if (existing !== undefined) return existing;
    if (states.size >= maxSources) {
      const t = now();
      for (const [key, s] of states) {
        refill(s, t);
        if (s.inFlight === 0 && s.connections === 0 && s.tokens >= limits.burst) states.delete(key);
      }
      if (states.size >= maxSources) return undefined;
    }
    const s: SourceState = { tokens: limits.burst, refilledAt: now(), inFlight: 0, connections: 0 };
    states.set(source, s);
    return s;
  }

  return {
    take(source) {
      const s = stateOf(source);
      if (s === undefined) return false;
      refill(s, now());
      if (s.tokens < 1) return false;
      s.tokens -= 1;
      return true;
    },
    acquire(source) {
      const s = stateOf(source);
      if (s === undefined || s.inFlight >= limits.maxInFlight) return false;
      s.inFlight++;
      return true;
    },
    release(source) {
      const s = states.get(source);
      if (s !== undefined && s.inFlight > 0) s.inFlight--;
    },
    openConnection(source) {
      const s = stateOf(source);
      if (s === undefined || s.connections >= limits.maxTcpConnections) return false;
      s.connections++;
      return true;
    },
    closeConnection(source) {
      const s = states.get(source);
      if (s !== undefined && s.connections > 0) s.connections--;
    },
    size: () => states.size,
  };
}
