import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Runs a full garbage collection once the agent has been idle for `delayMs`, so the memory
 * a burst of work used (file chunks, output buffers) goes back to the OS instead of
 * inflating the sandbox's footprint while it sits idle (and while it is snapshotted).
 */
export function createIdleCollector(delayMs = 1_000): { busy(): void; idle(): void } {
  let gc: (() => void) | undefined;
  try {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  } catch {
    gc = undefined;
  }
  let active = 0;
  let timer: NodeJS.Timeout | undefined;
  return {
    busy() {
      active++;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
    idle() {
      active = Math.max(0, active - 1);
      if (active > 0 || gc === undefined) return;
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        if (active === 0) gc?.();
      }, delayMs);
      timer.unref();
    },
  };
}
