import { ENV_NAME_RULE, NAME_RULE } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";

/** Secrets become environment variables, so their names follow the env var rule. */
export const SECRET_NAME_RULE = ENV_NAME_RULE;

export function checkName(kind: string, name: string, rule: RegExp = NAME_RULE): void {
  if (!rule.test(name)) {
    throw new ConnectError(
      `invalid ${kind} name ${JSON.stringify(name.slice(0, 80))}: must match ${rule.source}`,
      Code.InvalidArgument,
    );
  }
}

/** SQLite's UNIQUE violation, for turning a lost race into AlreadyExists. */
export function isUniqueViolation(e: unknown): boolean {
  return (
    (e as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE" ||
    (e as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}
