import { VolumeService } from "@bhatti/proto";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { callerOf } from "./auth-interceptor.js";

/** VolumeService: the caller's volumes (the same operations as `/volumes`). */
export function registerVolumeService(router: ConnectRouter, gw: GatewayContext): void {
  const { volumes, limiter } = gw.runtime;
  const caller = (ctx: HandlerContext, cls: RateClass): string => {
    const user = callerOf(ctx);
    limiter.take(user.record, cls);
    return user.id;
  };
  router.service(VolumeService, {
    createVolume: async (req, ctx) => ({
      volume: await volumes.create(caller(ctx, "lifecycle"), req.name, req.sizeMb),
    }),
    listVolumes: async (_req, ctx) => ({ volumes: await volumes.list(caller(ctx, "read")) }),
    getVolume: async (req, ctx) => ({ volume: await volumes.get(caller(ctx, "read"), req.volume) }),
    resizeVolume: async (req, ctx) => ({
      volume: await volumes.resize(caller(ctx, "lifecycle"), req.volume, req.sizeMb),
    }),
    deleteVolume: async (req, ctx) => ({
      volume: await volumes.delete(caller(ctx, "lifecycle"), req.volume),
    }),
  });
}
