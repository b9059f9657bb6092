/**
 * Per-attempt timeouts of WaitReady (v1): short first attempts beat ARP's 1 s retransmit
 * timer after a boot or restore; later ones allow for a slow guest.
 */
export function waitReadyAttemptTimeoutMs(attempt: number): number {
  if (attempt <= 3) return 100;
  if (attempt <= 6) return 250;
  if (attempt <= 10) return 500;
  return 2_000;
}

/** Pause between attempts. */
export const WAIT_READY_GAP_MS = 10;
/** Overall limit, at create and at restore. */
export const WAIT_READY_TIMEOUT_MS = 30_000;
