import type { AdminService } from "@bhatti/proto";
import type { ServiceImpl } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { callerOf } from "./auth-interceptor.js";

type AdminStoreMethods = Pick<ServiceImpl<typeof AdminService>, "listEvents" | "getMetrics" | "backup">;

/**
 * The AdminService methods the store implements (events, metrics, backup), spread into the
 * AdminService registration. The store checks that the caller is an admin.
 */
export function createAdminStoreMethods(gw: GatewayContext): AdminStoreMethods {
  const { store } = gw.clients;
  return {
    async listEvents(req, ctx) {
      const res = await store.queryEvents({
        actingUserId: callerOf(ctx).id,
        ...(req.filter ? { filter: req.filter } : {}),
      });
      return { events: res.events, total: res.total };
    },
    async getMetrics(req, ctx) {
      const res = await store.getMetrics({
        actingUserId: callerOf(ctx).id,
        ...(req.since ? { since: req.since } : {}),
        limit: req.limit,
      });
      return { ...(res.current ? { current: res.current } : {}), history: res.history };
    },
    async backup(req, ctx) {
      // Copying a large database takes longer than an ordinary call.
      const res = await store.backup(
        { actingUserId: callerOf(ctx).id, path: req.path },
        { timeoutMs: 600_000 },
      );
      return { path: res.path, sizeBytes: res.sizeBytes, schemaVersion: res.schemaVersion };
    },
  };
}
