import type { WebSocket } from "ws";

export interface KeepaliveOptions {
  /** v1: a ping every 30 s. */
  pingIntervalMs?: number;
  /** v1: the connection is dropped after 90 s without a pong. */
  deadlineMs?: number;
}

/**
 * Pings the client and terminates the connection when no pong (or any message) arrived
 * within the deadline. Returns a function that stops it.
 */
export function keepAlive(ws: WebSocket, options: KeepaliveOptions = {}): () => void {
  const interval = options.pingIntervalMs ?? 30_000;
  const deadline = options.deadlineMs ?? 90_000;
  let lastHeard = Date.now();
  const heard = () => {
    lastHeard = Date.now();
  };
  ws.on("pong", heard);
  ws.on("message", heard);
  const timer = setInterval(() => {
    if (Date.now() - lastHeard > deadline) {
      ws.terminate();
      return;
    }
    ws.ping();
  }, interval);
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    ws.off("pong", heard);
    ws.off("message", heard);
  };
  ws.once("close", stop);
  return stop;
}
