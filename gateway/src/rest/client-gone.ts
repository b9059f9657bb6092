import type { ServerResponse } from "node:http";
import type { RestContext } from "./router.js";

/**
 * An AbortSignal that aborts when the client goes away before its response was finished. Agent
 * calls and waits made for the request take it, so a client that disconnects frees the agent
 * connection (and the agent's connection slot) and the sandbox's hold at once.
 */
export function requestSignal(ctx: RestContext): AbortSignal {
  const controller = new AbortController();
  ctx.res.once("close", () => {
    if (!ctx.res.writableFinished) controller.abort(new DOMException("the client went away", "AbortError"));
  });
  return controller.signal;
}

/**
 * Resolves when `res` can take more bytes ('drain') or will never take any ('close'). A
 * response whose `write()` returned false is only written to again after this: a client that
 * stops reading holds the producer instead of growing the gateway's memory.
 */
export function writableOrGone(res: ServerResponse): Promise<void> {
  if (res.destroyed || res.writableEnded || !res.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
