import { PublishService } from "@bhatti/proto";
import type { ConnectRouter } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { proxyRuntimeOf } from "../proxy/proxy-runtime.js";
import { callerOf } from "./auth-interceptor.js";

/** PublishService: published ports (preview URLs) of the caller's sandboxes. */
export function registerPublishService(router: ConnectRouter, gw: GatewayContext): void {
  const ops = () => proxyRuntimeOf(gw).publish;
  router.service(PublishService, {
    async publish(req, ctx) {
      const published = await ops().publish(callerOf(ctx), req.sandbox, {
        port: req.port,
        alias: req.alias,
        private: req.private,
      });
      return { published };
    },
    async listPublished(req, ctx) {
      return { published: await ops().list(callerOf(ctx), req.sandbox) };
    },
    async unpublish(req, ctx) {
      await ops().unpublish(callerOf(ctx), req.sandbox, req.port);
      return {};
    },
  });
}
