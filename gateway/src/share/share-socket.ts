import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocketServer } from "ws";
import type { GatewayContext } from "../gateway-context.js";

/** `/share/<token>/ws`: the share page's terminal socket. */
export const shareSocketPattern = /^\/share\/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\/ws$/;

/**
 * Upgrades a share viewer's socket: the token (not an API key) is checked first (signature,
 * expiry, revocation: 401 before the upgrade), then the socket speaks the TTY shell protocol of
 * `/sandboxes/:id/ws`, fixed to the shared session and shared with its other viewers
 * (share/session-hub.ts); a read-only link's input is dropped there.
 */
export async function upgradeShareSocket(
  gw: GatewayContext,
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  token: string,
): Promise<void> {
  gw.shares.limitAddress(req.socket.remoteAddress ?? "");
  const share = await gw.shares.authorize(token);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("error", (e: Error) => {
      gw.logger.warn("share websocket closed on a bad frame", {
        share_id: share.claims.id,
        error: e.message,
      });
      ws.terminate();
    });
    const untrack = gw.shares.track(share.claims.id, {
      sandboxId: share.claims.sandboxId,
      end: (reason) => ws.close(1008, reason),
    });
    // The link's expiry ends a viewer that is still connected.
    const expiry = setTimeout(
      () => ws.close(1008, "share expired"),
      Math.max(0, share.claims.expiresAt * 1000 - Date.now()),
    );
    expiry.unref();
    ws.once("close", () => {
      untrack();
      clearTimeout(expiry);
    });
    gw.shares.join(ws, share);
  });
}
