import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { PublishRuleRow, PublishRules } from "../domain/publish-rules.js";
import type { ShellTokens } from "../domain/shell-tokens.js";
import { toTimestamp } from "./convert.js";

type PublishMethods = Pick<
  ServiceImpl<typeof StoreService>,
  | "createPublishRule"
  | "listPublishRules"
  | "deletePublishRule"
  | "resolvePublishAlias"
  | "createShellToken"
  | "verifyShellToken"
  | "revokeShellToken"
>;

export const publishRuleToProto = (r: PublishRuleRow) => ({
  id: r.id,
  sandboxId: r.sandbox_id,
  userId: r.user_id,
  port: r.port,
  alias: r.alias,
  createdAt: toTimestamp(r.created_at),
  private: r.private === 1,
});

/** What makes a sandbox reachable from outside: public aliases and web-shell tokens. */
export function createPublishHandlers(rules: PublishRules, shellTokens: ShellTokens): PublishMethods {
  return {
    createPublishRule: (req) => ({
      rule: publishRuleToProto(rules.create(req.userId, req.sandbox, req.port, req.alias, req.private)),
    }),
    listPublishRules: (req) => ({ rules: rules.list(req.userId, req.sandbox).map(publishRuleToProto) }),
    deletePublishRule: (req) => ({
      rule: publishRuleToProto(rules.delete(req.userId, req.sandbox, req.port)),
    }),
    resolvePublishAlias: (req) => ({ rule: publishRuleToProto(rules.resolve(req.alias)) }),
    createShellToken: (req) => shellTokens.create(req.userId, req.sandbox),
    verifyShellToken: (req) => ({ userId: shellTokens.verify(req.sandboxId, req.token) }),
    revokeShellToken: (req) => ({ revoked: shellTokens.revoke(req.userId, req.sandbox) }),
  };
}
