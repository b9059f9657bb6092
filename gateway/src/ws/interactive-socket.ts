import type { WebSocket } from "ws";
import type { WakeController } from "../wake/wake-controller.js";
import { keepAlive } from "./keepalive.js";

/** How often a live socket counts as activity, even while its user is only reading. */
const ACTIVITY_INTERVAL_MS = 10_000;

/**
 * What every interactive WebSocket (shell, piped exec) does while it is open: it pins the
 * sandbox hot, pings the client, and reports activity. All of it stops when the socket closes,
 * after which `onClose` runs (detach the session).
 */
export function holdWhileOpen(
  ws: WebSocket,
  wake: WakeController,
  sandboxId: string,
  onClose: () => void,
): void {
  const release = wake.interactive.attach(sandboxId);
  const stopKeepalive = keepAlive(ws);
  const activity = setInterval(() => wake.touch(sandboxId), ACTIVITY_INTERVAL_MS);
  activity.unref();
  ws.once("close", () => {
    release();
    stopKeepalive();
    clearInterval(activity);
    onClose();
  });
}
