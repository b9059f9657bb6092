/**
 * Ids the store mints for sandboxes and users (and every other row): 16 lowercase hex chars,
 * 8 random bytes. Every process that takes an id from outside checks it with this one rule.
 */
export const ID_RULE = /^[0-9a-f]{16}$/;

export function isSandboxId(value: string): boolean {
  return ID_RULE.test(value);
}

export function isUserId(value: string): boolean {
  return ID_RULE.test(value);
}
