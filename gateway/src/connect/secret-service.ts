import { SecretService } from "@bhatti/proto";
import type { ConnectRouter } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { callerOf } from "./auth-interceptor.js";

/** SecretService: the caller's own secrets. Values go to the store and never come back. */
export function registerSecretService(router: ConnectRouter, gw: GatewayContext): void {
  const { store } = gw.clients;
  router.service(SecretService, {
    async setSecret(req, ctx) {
      const res = await store.setSecret({ userId: callerOf(ctx).id, name: req.name, value: req.value });
      return { ...(res.secret ? { secret: res.secret } : {}), created: res.created };
    },
    async listSecrets(_req, ctx) {
      return { secrets: (await store.listSecrets({ userId: callerOf(ctx).id })).secrets };
    },
    async deleteSecret(req, ctx) {
      await store.deleteSecret({ userId: callerOf(ctx).id, name: req.name });
      return {};
    },
  });
}
