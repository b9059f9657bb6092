/**
 * Which sandboxes live clients pin hot, as last reported by each reporter (a gateway
 * instance). Each report replaces that reporter's whole set, and a reporter that stops
 * reporting loses its pins after its TTL, so a crashed gateway cannot pin a sandbox forever.
 */
export interface Pin {
  readonly interactiveClients: number;
  readonly inFlight: number;
}

export interface PinRegistry {
  replace(reporter: string, pins: ReadonlyMap<string, Pin>, ttlMs: number, now: number): void;
  /** The sum over live reporters; zeros when nobody pins the sandbox. */
  pinOf(sandboxId: string, now: number): Pin;
  isPinned(sandboxId: string, now: number): boolean;
}

interface ReporterPins {
  pins: ReadonlyMap<string, Pin>;
  expiresAt: number;
}

export function createPinRegistry(): PinRegistry {
  const reporters = new Map<string, ReporterPins>();
  const pinOf = (sandboxId: string, now: number): Pin => {
    let interactiveClients = 0;
    let inFlight = 0;
    for (const [reporter, entry] of reporters) {
      if (entry.expiresAt <= now) {
        reporters.delete(reporter);
        continue;
      }
      const pin = entry.pins.get(sandboxId);
      if (pin === undefined) continue;
      interactiveClients += pin.interactiveClients;
      inFlight += pin.inFlight;
    }
    return { interactiveClients, inFlight };
  };
  return {
    replace(reporter, pins, ttlMs, now) {
      if (pins.size === 0) reporters.delete(reporter);
      else reporters.set(reporter, { pins, expiresAt: now + ttlMs });
    },
    pinOf,
    isPinned(sandboxId, now) {
      const p = pinOf(sandboxId, now);
      return p.interactiveClients > 0 || p.inFlight > 0;
    },
  };
}
