import type { Logger } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";

export interface VmmEventHandlers {
  /** The feed connected (true) or dropped (false). */
  onLive(live: boolean): void;
  /**
   * The sandbox left the hot state: `warm` when it was paused (frozen: its TCP connections
   * survive), otherwise snapshotted or its restore failed (its connections are gone).
   */
  onCooled(sandboxId: string, to: "warm" | "cold"): void;
  onDestroyed(sandboxId: string): void;
}

const coolingKinds = new Set(["thermal.pause", "thermal.snapshot", "thermal.restore_failed"]);

/**
 * Follows `VmmService.WatchEvents` so the hot cache learns at once when a sandbox cools or
 * goes away; reconnects with a capped backoff. Returns a function that stops it.
 */
export function watchVmmEvents(
  clients: ServiceClients,
  logger: Logger,
  handlers: VmmEventHandlers,
): () => void {
  const abort = new AbortController();
  let backoffMs = 250;
  const loop = async () => {
    while (!abort.signal.aborted) {
      try {
        const stream = clients.vmm.watchEvents({}, { signal: abort.signal, timeoutMs: 0 });
        let announced = false;
        for await (const ev of stream) {
          if (!announced) {
            announced = true;
            handlers.onLive(true);
          }
          backoffMs = 250;
          if (ev.kind === "sandbox.destroyed") handlers.onDestroyed(ev.sandboxId);
          else if (coolingKinds.has(ev.kind))
            handlers.onCooled(ev.sandboxId, ev.kind === "thermal.pause" ? "warm" : "cold");
        }
      } catch (e) {
        if (abort.signal.aborted) return;
        const err = ConnectError.from(e);
        if (err.code !== Code.Unavailable && err.code !== Code.Unimplemented) {
          logger.debug("vmm event feed failed", { error: err.rawMessage });
        }
      }
      handlers.onLive(false);
      await new Promise((r) => setTimeout(r, backoffMs).unref());
      backoffMs = Math.min(backoffMs * 2, 5_000);
    }
  };
  void loop();
  return () => abort.abort();
}
