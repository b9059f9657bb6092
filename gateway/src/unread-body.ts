import type { IncomingMessage, ServerResponse } from "node:http";

/** How much of a refused body is still read (and dropped) so that the client sees the answer. */
export const REFUSED_BODY_DRAIN_BYTES = 4 << 20;

/**
 * Called when a request is answered before its body was read (a refusal before auth, a size cap).
 * Closing at once would make the kernel reset the connection while the client is still sending,
 * and the client would often lose the answer; draining the whole body (Node's default) lets one
 * request make the gateway read gigabytes. So the rest is read and dropped up to a bound, then
 * the connection is cut.
 */
export function drainRefusedBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.destroyed) return;
  let drained = 0;
  req.on("data", (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > REFUSED_BODY_DRAIN_BYTES) {
      res.shouldKeepAlive = false;
      req.socket.destroy();
    }
  });
  req.on("error", () => undefined);
  // A reader that stopped at a cap left the request paused.
  req.resume();
}
