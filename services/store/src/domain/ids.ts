import { createHash, randomBytes } from "node:crypto";
import { ID_RULE } from "@bhatti/proto";

const API_KEY_PATTERN = /^bht_[0-9a-f]{64}$/;

/** A new id: 16 lowercase hex chars (8 random bytes). */
export function newId(): string {
  return randomBytes(8).toString("hex");
}

export function isId(value: string): boolean {
  return ID_RULE.test(value);
}

/** A new API key: `bht_` + 64 hex chars (32 random bytes). */
export function newApiKey(): string {
  return `bht_${randomBytes(32).toString("hex")}`;
}

export function isWellFormedApiKey(value: string): boolean {
  return API_KEY_PATTERN.test(value);
}

/** Hex SHA-256: how keys and tokens are stored. */
export function sha256Hex(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** `n` random lowercase hex chars (for default names such as `sandbox-<6hex>`). */
export function randomHex(n: number): string {
  return randomBytes(Math.ceil(n / 2))
    .toString("hex")
    .slice(0, n);
}
