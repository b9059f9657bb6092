import { ImageService } from "@bhatti/proto";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import { createImageOperations } from "../images/image-operations.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { callerOf } from "./auth-interceptor.js";

/** ImageService: pull, import, save, delete, share and task progress, for the caller. */
export function registerImageService(router: ConnectRouter, gw: GatewayContext): void {
  const ops = createImageOperations(gw);
  const caller = (ctx: HandlerContext, cls: RateClass): AuthenticatedUser => {
    const user = callerOf(ctx);
    gw.runtime.limiter.take(user.record, cls);
    return user;
  };
  router.service(ImageService, {
    pullImage: async (req, ctx) => ({ task: await ops.pull(caller(ctx, "lifecycle"), req) }),
    importImage: async (req, ctx) => ({ task: await ops.importTar(caller(ctx, "lifecycle"), req) }),
    saveImage: async (req, ctx) => ({
      task: await ops.save(caller(ctx, "lifecycle"), req.sandbox, req.name),
    }),
    async deleteImage(req, ctx) {
      await ops.remove(caller(ctx, "lifecycle"), req.name);
      return {};
    },
    shareImage: async (req, ctx) => ({ sharedWith: await ops.share(caller(ctx, "lifecycle"), req) }),
    getTask: async (req, ctx) => ({ task: await ops.task(caller(ctx, "read"), req.id) }),
  });
}
