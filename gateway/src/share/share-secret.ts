import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The file, in the state dir, that holds the key share links are signed with. */
export const SHARE_KEY_FILE = "share.key";

/**
 * The HMAC key of share links: 32 random bytes, created once (mode 0600, exclusive create, so two
 * gateways starting together agree on one key) and kept across restarts, so links stay valid.
 * Deleting the file invalidates every link.
 */
export function loadOrCreateShareSecret(stateDir: string): Buffer {
  const path = join(stateDir, SHARE_KEY_FILE);
  try {
    writeFileSync(path, randomBytes(32).toString("hex"), { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const key = Buffer.from(readFileSync(path, "utf8").trim(), "hex");
  if (key.length < 32) throw new Error(`${path} does not hold a 32-byte hex key`);
  return key;
}
