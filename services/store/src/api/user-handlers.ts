import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import { sha256Hex } from "../domain/ids.js";
import type { UserDirectory } from "../domain/users.js";
import { limitsFromProto, userToProto } from "./convert.js";

type UserMethods = Pick<
  ServiceImpl<typeof StoreService>,
  | "authenticateApiKey"
  | "createUser"
  | "getUser"
  | "listUsers"
  | "rotateApiKey"
  | "updateUserLimits"
  | "deleteUser"
>;

/** Users and API keys. Keys appear only in CreateUser / RotateApiKey responses. */
export function createUserHandlers(users: UserDirectory): UserMethods {
  return {
    authenticateApiKey(req) {
      const user = users.authenticate(req.apiKey, { remoteAddr: req.remoteAddr, path: req.path });
      return { user: userToProto(user), keySha256: sha256Hex(req.apiKey) };
    },
    createUser(req) {
      const { user, apiKey } = users.create(req.actingUserId, {
        name: req.name,
        isAdmin: req.isAdmin,
        limits: limitsFromProto(req.limits),
      });
      return { user: userToProto(user), apiKey };
    },
    getUser: (req) => ({ user: userToProto(users.get(req.actingUserId, req.user)) }),
    listUsers: (req) => ({
      users: users
        .list(req.actingUserId)
        .map((e) => ({ user: userToProto(e.user), sandboxCount: e.sandboxCount })),
    }),
    rotateApiKey(req) {
      const { user, apiKey, revokedKeySha256 } = users.rotateKey(req.actingUserId, req.user);
      return { user: userToProto(user), apiKey, revokedKeySha256 };
    },
    updateUserLimits: (req) => ({
      user: userToProto(users.updateLimits(req.actingUserId, req.user, limitsFromProto(req.limits))),
    }),
    deleteUser: (req) => users.delete(req.actingUserId, req.user),
  };
}
