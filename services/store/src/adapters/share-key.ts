import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The file, in the state dir, that holds the key share links are signed with. */
export const SHARE_KEY_FILE = "share.key";

/**
 * The HMAC key the gateway signs share links with: 32 random bytes, created once (mode 0600,
 * exclusive create) and kept across restarts, so links stay valid. The store keeps it because it
 * owns the state dir (the gateway's unit cannot write there). Deleting the file invalidates every link.
 */
export function loadOrCreateShareKey(stateDir: string): Buffer {
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
