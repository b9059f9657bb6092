import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { SecretInfoRow, SecretVault } from "../domain/secrets.js";
import { toTimestamp } from "./convert.js";

type SecretMethods = Pick<
  ServiceImpl<typeof StoreService>,
  "setSecret" | "listSecrets" | "deleteSecret" | "resolveSecrets"
>;

export const secretInfoToProto = (row: SecretInfoRow) => ({
  name: row.name,
  createdAt: toTimestamp(row.created_at),
  updatedAt: toTimestamp(row.updated_at),
});

/** Secrets: values go in through SetSecret and come out only through ResolveSecrets. */
export function createSecretHandlers(secrets: SecretVault): SecretMethods {
  return {
    async setSecret(req) {
      const { secret, created } = await secrets.set(req.userId, req.name, req.value);
      return { secret: secretInfoToProto(secret), created };
    },
    listSecrets: (req) => ({ secrets: secrets.list(req.userId).map(secretInfoToProto) }),
    deleteSecret(req) {
      secrets.delete(req.userId, req.name);
      return {};
    },
    resolveSecrets: async (req) => ({ values: await secrets.resolve(req.userId, req.names) }),
  };
}
