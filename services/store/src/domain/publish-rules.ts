import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import { newId, randomHex } from "./ids.js";
import { isUniqueViolation } from "./names.js";
import type { SandboxRegistry } from "./sandboxes.js";

export interface PublishRuleRow {
  id: string;
  sandbox_id: string;
  user_id: string;
  port: number;
  alias: string;
  created_at: string;
  /** 1: the proxy requires the owner's API key. */
  private: number;
}

export const ALIAS_RULE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const RESERVED_ALIASES = new Set([
  "www",
  "mail",
  "admin",
  "status",
  "ns1",
  "ns2",
  "api",
  "app",
  "_acme-challenge",
]);

export interface PublishRules {
  create(
    userId: string,
    sandboxRef: string,
    port: number,
    alias: string,
    isPrivate?: boolean,
  ): PublishRuleRow;
  list(userId: string, sandboxRef?: string): PublishRuleRow[];
  delete(userId: string, sandboxRef: string, port: number): PublishRuleRow;
  resolve(alias: string): PublishRuleRow;
}

/** `<name>` lowercased with anything outside [a-z0-9-] turned into "-", trimmed to fit a suffix. */
export function aliasBase(sandboxName: string): string {
  const cleaned = sandboxName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 55)
    .replace(/-+$/, "");
  return cleaned === "" ? "sandbox" : cleaned;
}

export function createPublishRules(db: SqliteDatabase, sandboxes: SandboxRegistry): PublishRules {
  const byAlias = db.prepare<[string], PublishRuleRow>("SELECT * FROM publish_rules WHERE alias = ?");
  const byPort = db.prepare<[string, number], PublishRuleRow>(
    "SELECT * FROM publish_rules WHERE sandbox_id = ? AND port = ?",
  );
  const insert = db.prepare(
    "INSERT INTO publish_rules (id, sandbox_id, user_id, port, alias, created_at, private) VALUES (@id, @sandbox_id, @user_id, @port, @alias, @created_at, @private)",
  );

  const checkPort = (port: number) => {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConnectError(`invalid port ${port} (1..65535)`, Code.InvalidArgument);
    }
  };

  return {
    create: (userId, sandboxRef, port, alias, isPrivate = false) =>
      db
        .transaction(() => {
          const sandbox = sandboxes.get({ userId }, sandboxRef);
          checkPort(port);
          if (byPort.get(sandbox.id, port)) {
            throw new ConnectError(
              `port ${port} of ${sandbox.name} is already published`,
              Code.AlreadyExists,
            );
          }
          let chosen = alias;
          if (alias !== "") {
            if (!ALIAS_RULE.test(alias)) {
              throw new ConnectError(
                `invalid alias ${JSON.stringify(alias)}: must match ${ALIAS_RULE.source}`,
                Code.InvalidArgument,
              );
            }
            if (RESERVED_ALIASES.has(alias))
              throw new ConnectError(`alias ${alias} is reserved`, Code.InvalidArgument);
            if (byAlias.get(alias))
              throw new ConnectError(`alias ${JSON.stringify(alias)} is already in use`, Code.AlreadyExists);
          } else {
            const base = aliasBase(sandbox.name);
            const free = Array.from({ length: 4 }, () => `${base}-${randomHex(6)}`).find(
              (a) => !byAlias.get(a),
            );
            if (free === undefined)
              throw new ConnectError("could not find a free alias; pass one", Code.AlreadyExists);
            chosen = free;
          }
          const row: PublishRuleRow = {
            id: `pub_${newId()}`,
            sandbox_id: sandbox.id,
            user_id: userId,
            port,
            alias: chosen,
            created_at: nowIso(),
            private: isPrivate ? 1 : 0,
          };
          try {
            insert.run(row);
          } catch (e) {
            if (isUniqueViolation(e))
              throw new ConnectError("alias or port already published", Code.AlreadyExists);
            throw e;
          }
          return row;
        })
        .immediate(),
    list(userId, sandboxRef) {
      if (sandboxRef) {
        const sandbox = sandboxes.get({ userId }, sandboxRef);
        return db
          .prepare<[string], PublishRuleRow>("SELECT * FROM publish_rules WHERE sandbox_id = ? ORDER BY port")
          .all(sandbox.id);
      }
      return db
        .prepare<[string], PublishRuleRow>(
          "SELECT * FROM publish_rules WHERE user_id = ? ORDER BY created_at",
        )
        .all(userId);
    },
    delete: (userId, sandboxRef, port) =>
      db
        .transaction(() => {
          const sandbox = sandboxes.get({ userId }, sandboxRef);
          const row = byPort.get(sandbox.id, port);
          if (!row) throw new ConnectError(`port ${port} of ${sandbox.name} is not published`, Code.NotFound);
          db.prepare("DELETE FROM publish_rules WHERE id = ?").run(row.id);
          return row;
        })
        .immediate(),
    resolve(alias) {
      const row = byAlias.get(alias.toLowerCase());
      if (!row)
        throw new ConnectError(`alias ${JSON.stringify(alias.slice(0, 80))} not found`, Code.NotFound);
      return row;
    },
  };
}
