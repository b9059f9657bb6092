import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";
import type { ApiKeyLookup } from "./api-key-authenticator.js";

/** Looks keys up through `StoreService.AuthenticateApiKey` (which also records auth.failed events). */
export function createStoreApiKeyLookup(clients: ServiceClients): ApiKeyLookup {
  return async (apiKey, origin) => {
    try {
      const { user, keySha256 } = await clients.store.authenticateApiKey({
        apiKey,
        remoteAddr: origin.remoteAddr,
        path: origin.path,
      });
      if (user === undefined || user.id === "") return undefined;
      return { user: { id: user.id, name: user.name, isAdmin: user.isAdmin, record: user }, keySha256 };
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.Unauthenticated || err.code === Code.NotFound) return undefined;
      throw err;
    }
  };
}
