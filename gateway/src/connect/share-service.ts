import { ForwardService, ShareService } from "@bhatti/proto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { ForwardInfo } from "../forward/forward-manager.js";
import type { GatewayContext } from "../gateway-context.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { forwardJson } from "../rest/forward-routes.js";
import { requestBaseUrl } from "../rest/share-routes.js";
import type { ShareView } from "../share/share-manager.js";
import { callerOf } from "./auth-interceptor.js";

const shareMessage = (s: ShareView, baseUrl: string) => ({
  id: s.id,
  sandboxId: s.sandboxId,
  sessionId: s.sessionId,
  readOnly: s.readOnly,
  expiresAt: timestampFromDate(s.expiresAt),
  createdAt: timestampFromDate(s.createdAt),
  token: s.token ?? "",
  url: s.path !== undefined ? `${baseUrl}${s.path}` : "",
});

const forwardMessage = (f: ForwardInfo) => ({
  sandboxId: f.sandboxId,
  port: f.port,
  hostPort: f.hostPort,
  address: forwardJson(f).address,
  createdAt: timestampFromDate(f.createdAt),
  connections: f.connections,
});

/** ShareService and ForwardService: the same operations as the REST routes, for the CLI. */
export function registerShareServices(router: ConnectRouter, gw: GatewayContext): void {
  const { limiter, sandboxes } = gw.runtime;
  const caller = (ctx: HandlerContext, cls: RateClass): AuthenticatedUser => {
    const user = callerOf(ctx);
    limiter.take(user.record, cls);
    return user;
  };
  const baseOf = (ctx: HandlerContext) =>
    requestBaseUrl({ host: ctx.requestHeader.get("host") ?? undefined }, false);

  router.service(ShareService, {
    async createShare(req, ctx) {
      const user = caller(ctx, "exec");
      const share = await gw.shares.create(user, req.sandbox, {
        expiresSec: Number(req.expiresSec),
        readOnly: req.readOnly,
        sessionId: req.sessionId === "" ? undefined : req.sessionId,
      });
      return { share: shareMessage(share, baseOf(ctx)) };
    },
    async listShares(req, ctx) {
      const user = caller(ctx, "read");
      return { shares: (await gw.shares.list(user, req.sandbox)).map((s) => shareMessage(s, "")) };
    },
    async revokeShares(req, ctx) {
      const user = caller(ctx, "read");
      return {
        shareIds: await gw.shares.revoke(user, req.sandbox, req.shareId === "" ? undefined : req.shareId),
      };
    },
  });

  router.service(ForwardService, {
    async createForward(req, ctx) {
      const user = caller(ctx, "read");
      const sandboxId = await sandboxes.resolveId(user, req.sandbox);
      const info = await gw.forwards.open(user.id, sandboxId, req.port, req.hostPort);
      return { forward: forwardMessage(info) };
    },
    async listForwards(req, ctx) {
      const user = caller(ctx, "read");
      const sandboxId = await sandboxes.resolveId(user, req.sandbox);
      return { forwards: gw.forwards.list(user.id, sandboxId).map(forwardMessage) };
    },
    async deleteForward(req, ctx) {
      const user = caller(ctx, "read");
      const sandboxId = await sandboxes.resolveId(user, req.sandbox);
      return {
        forward: forwardMessage({
          ...(await gw.forwards.close(user.id, sandboxId, req.port)),
          connections: 0,
        }),
      };
    },
  });
}
