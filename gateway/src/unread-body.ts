import type { IncomingMessage, ServerResponse } from "node:http";

/** How much of a refused body is still read (and dropped) so that the client sees the answer. */
export const REFUSED_BODY_DRAIN_BYTES = 4 << 20;
/** How long a connection whose refused body went past the drain bound is kept before it is cut. */
export const REFUSED_BODY_LINGER_MS = 2_000;

/**
 * Called when a request is answered before its body was read (a refusal before auth, a size cap).
 * Closing at once would make the kernel reset the connection while the client is still sending,
 * and the client would often lose the answer; draining the whole body (Node's default) lets one
 * request make the gateway read gigabytes. So the rest is read and dropped up to a bound; past it
 * the gateway stops reading (the client's sends back up in its own buffers instead of being
 * reset), sends FIN once the answer is out, and cuts the connection after a short linger, so a
 * client that is slow to read still gets the answer first.
 */
export function drainRefusedBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.destroyed) return;
  let drained = 0;
  const onData = (chunk: Buffer) => {
    drained += chunk.length;
    if (drained <= REFUSED_BODY_DRAIN_BYTES) return;
    req.off("data", onData);
    req.pause();
    res.shouldKeepAlive = false;
    const socket = req.socket;
    const cut = setTimeout(() => socket.destroy(), REFUSED_BODY_LINGER_MS);
    cut.unref();
    socket.once("close", () => clearTimeout(cut));
    if (res.writableFinished) socket.end();
    else res.once("finish", () => socket.end());
  };
  req.on("data", onData);
  req.on("error", () => undefined);
  // A reader that stopped at a cap left the request paused.
  req.resume();
}
