import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";
import type { AuthenticatedUser } from "./authenticated-user.js";
import type { ApiKeyLookup } from "./api-key-authenticator.js";

interface StoreUserShape {
  id?: string;
  name?: string;
  isAdmin?: boolean;
}

type AuthenticateApiKeyCall = (request: { apiKey: string }) => Promise<{ user?: StoreUserShape }>;

/**
 * Looks keys up through `StoreService.AuthenticateApiKey`. Returns undefined when the store's
 * API has no such RPC (the gateway then runs without authentication and says so loudly).
 */
export function createStoreApiKeyLookup(clients: ServiceClients): ApiKeyLookup | undefined {
  const call = (clients.store as unknown as Record<string, unknown>)["authenticateApiKey"];
  if (typeof call !== "function") return undefined;
  const authenticateApiKey = call as AuthenticateApiKeyCall;
  return async (apiKey) => {
    try {
      const { user } = await authenticateApiKey({ apiKey });
      if (user?.id === undefined || user.id === "") return undefined;
      const found: AuthenticatedUser = { id: user.id, name: user.name ?? "", isAdmin: user.isAdmin === true };
      return found;
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.NotFound || err.code === Code.Unauthenticated) return undefined;
      throw err;
    }
  };
}
