import { UserService } from "@bhatti/proto";
import type { ConnectRouter } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { callerOf } from "./auth-interceptor.js";

/**
 * UserService: forwards to the store with the caller as acting user; the store checks admin
 * rights (PermissionDenied) so the rule lives in one place. Rotation and deletion drop the
 * old key from the gateway's cache at once and end the sessions opened with it.
 */
export function registerUserService(router: ConnectRouter, gw: GatewayContext): void {
  const { store } = gw.clients;
  const cache = gw.auth.authenticator;
  router.service(UserService, {
    async createUser(req, ctx) {
      const res = await store.createUser({
        actingUserId: callerOf(ctx).id,
        name: req.name,
        isAdmin: req.isAdmin,
        ...(req.limits ? { limits: req.limits } : {}),
      });
      return { ...(res.user ? { user: res.user } : {}), apiKey: res.apiKey };
    },
    async listUsers(_req, ctx) {
      return { users: (await store.listUsers({ actingUserId: callerOf(ctx).id })).users };
    },
    async rotateApiKey(req, ctx) {
      const res = await store.rotateApiKey({ actingUserId: callerOf(ctx).id, user: req.user });
      // Ends the WebSockets and streams opened with the old key too.
      gw.auth.revokeKey(res.revokedKeySha256);
      if (res.user) cache.forgetUser(res.user.id);
      return { ...(res.user ? { user: res.user } : {}), apiKey: res.apiKey };
    },
    async updateUserLimits(req, ctx) {
      const res = await store.updateUserLimits({
        actingUserId: callerOf(ctx).id,
        user: req.user,
        ...(req.limits ? { limits: req.limits } : {}),
      });
      // Cached users carry their limits: make the new ones apply at once.
      if (res.user) cache.forgetUser(res.user.id);
      return res.user ? { user: res.user } : {};
    },
    async deleteUser(req, ctx) {
      const target = await store.getUser({ actingUserId: callerOf(ctx).id, user: req.user });
      const res = await store.deleteUser({ actingUserId: callerOf(ctx).id, user: req.user });
      gw.auth.revokeKey(res.revokedKeySha256);
      if (target.user) gw.auth.revokeUser(target.user.id);
      return {};
    },
    whoAmI: (_req, ctx) => ({ user: callerOf(ctx).record }),
  });
}
