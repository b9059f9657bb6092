import { create } from "@bufbuild/protobuf";
import { type PublishRule, type PublishedPort, PublishedPortSchema } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import type { AliasCache } from "./alias-cache.js";
import type { AppDialer } from "./app-dialer.js";
import { checkProxyPort } from "./preview-proxy.js";
import { publishedUrl } from "./published-url.js";

/** Publish, list and unpublish a sandbox's ports: what REST and Connect both call. */
export interface PublishOperations {
  publish(
    user: AuthenticatedUser,
    sandbox: string,
    input: { port: unknown; alias?: string; private?: boolean },
  ): Promise<PublishedPort>;
  list(user: AuthenticatedUser, sandbox: string): Promise<PublishedPort[]>;
  unpublish(user: AuthenticatedUser, sandbox: string, port: unknown): Promise<PublishedPort>;
}

export function createPublishOperations(
  gw: GatewayContext,
  aliases: AliasCache,
  dialer: AppDialer,
): PublishOperations {
  const { store } = gw.clients;
  const toPublished = (rule: PublishRule | undefined): PublishedPort => {
    if (rule === undefined) throw new ConnectError("store returned no rule", Code.Internal);
    return create(PublishedPortSchema, {
      id: rule.id,
      sandboxId: rule.sandboxId,
      port: rule.port,
      alias: rule.alias,
      url: publishedUrl(gw.config, rule.alias),
      private: rule.private,
      ...(rule.createdAt !== undefined ? { createdAt: rule.createdAt } : {}),
    });
  };
  // The caller's own sandbox (404 otherwise), by id or name, as the store expects it.
  const idOf = (user: AuthenticatedUser, sandbox: string) => gw.runtime.sandboxes.resolveId(user, sandbox);
  return {
    async publish(user, sandbox, input) {
      const port = checkProxyPort(input.port);
      const sandboxId = await idOf(user, sandbox);
      const { rule } = await store.createPublishRule({
        userId: user.id,
        sandbox: sandboxId,
        port,
        alias: input.alias ?? "",
        private: input.private === true,
      });
      return toPublished(rule);
    },
    async list(user, sandbox) {
      const sandboxId = await idOf(user, sandbox);
      const { rules } = await store.listPublishRules({ userId: user.id, sandbox: sandboxId });
      return rules.map(toPublished);
    },
    async unpublish(user, sandbox, rawPort) {
      const port = checkProxyPort(rawPort);
      const sandboxId = await idOf(user, sandbox);
      const { rule } = await store.deletePublishRule({ userId: user.id, sandbox: sandboxId, port });
      if (rule !== undefined) aliases.evict(rule.alias);
      dialer.forget(sandboxId, port);
      return toPublished(rule);
    },
  };
}
