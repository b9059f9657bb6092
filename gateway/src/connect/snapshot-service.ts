import { SnapshotService } from "@bhatti/proto";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { sandboxMessage } from "../sandboxes/sandbox-view.js";
import { callerOf } from "./auth-interceptor.js";

/** The public SnapshotService: the same operations as the REST snapshot routes, for the CLI. */
export function registerSnapshotService(router: ConnectRouter, gw: GatewayContext): void {
  const { snapshots, limiter } = gw.runtime;
  const caller = (ctx: HandlerContext, cls: RateClass): AuthenticatedUser => {
    const user = callerOf(ctx);
    limiter.take(user.record, cls);
    return user;
  };
  router.service(SnapshotService, {
    async createSnapshot(req, ctx) {
      const { snapshot, pausedMs } = await snapshots.create(
        caller(ctx, "lifecycle"),
        req.sandbox,
        req.name,
        req.fsOnly,
      );
      return { snapshot, pausedMs };
    },
    listSnapshots: async (_req, ctx) => ({ snapshots: await snapshots.list(caller(ctx, "read")) }),
    getSnapshot: async (req, ctx) => ({ snapshot: await snapshots.get(caller(ctx, "read"), req.snapshot) }),
    deleteSnapshot: async (req, ctx) => ({
      snapshot: await snapshots.delete(caller(ctx, "lifecycle"), req.snapshot),
    }),
    async resumeSnapshot(req, ctx) {
      const state = await snapshots.resume(caller(ctx, "create"), req.snapshot, {
        ...(req.name !== "" ? { name: req.name } : {}),
        ...(req.into !== "" ? { into: req.into } : {}),
      });
      return { sandbox: sandboxMessage(state) };
    },
  });
}
