import {
  chmodSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";

/** Encrypts secret values at rest under the server's age X25519 identity. */
export interface SecretCipher {
  encrypt(plaintext: string): Promise<Uint8Array>;
  decrypt(ciphertext: Uint8Array): Promise<string>;
  readonly recipient: string;
}

/** The identity file could not be used; never replaced silently (that would orphan every secret). */
export class AgeKeyError extends Error {
  override readonly name = "AgeKeyError";
}

/** True if the key file exists and is not empty. */
export function ageKeyPresent(keyPath: string): boolean {
  try {
    return statSync(keyPath).size > 0;
  } catch {
    return false;
  }
}

/**
 * Loads the identity from `keyPath`, creating it (mode 0600) if the file is missing or empty.
 * A file with anything else than one AGE-SECRET-KEY line is refused rather than overwritten.
 */
export async function loadOrCreateAgeIdentity(keyPath: string): Promise<SecretCipher> {
  let identity = "";
  try {
    identity = readFileSync(keyPath, "utf8").trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new AgeKeyError(`cannot read age key ${keyPath}: ${(e as Error).message}`);
    }
  }
  if (identity === "") {
    identity = await generateX25519Identity();
    const tmp = `${keyPath}.tmp-${process.pid}`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, `${identity}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, keyPath);
    // Without this a power loss can lose the rename: the next start would generate a new key
    // and every secret encrypted under this one would be unreadable (untested mode 17).
    const dirFd = openSync(dirname(keyPath), "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } else if (!/^AGE-SECRET-KEY-1[0-9A-Z]+$/.test(identity)) {
    throw new AgeKeyError(`age key ${keyPath} does not hold an X25519 identity; refusing to replace it`);
  }
  if ((statSync(keyPath).mode & 0o077) !== 0) chmodSync(keyPath, 0o600);
  const recipient = await identityToRecipient(identity);
  return {
    recipient,
    async encrypt(plaintext) {
      const e = new Encrypter();
      e.addRecipient(recipient);
      return e.encrypt(plaintext);
    },
    async decrypt(ciphertext) {
      const d = new Decrypter();
      d.addIdentity(identity);
      return d.decrypt(ciphertext, "text");
    },
  };
}
