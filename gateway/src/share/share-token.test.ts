import { randomBytes } from "node:crypto";
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type ShareClaims, signShareToken, verifyShareToken } from "./share-token.js";

const key = randomBytes(32);
const claims: ShareClaims = {
  id: "shr_0123456789abcdef01234567",
  sandboxId: "0123456789abcdef",
  sessionId: "s3",
  readOnly: true,
  expiresAt: 2_000_000_000,
};

const messageOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return ConnectError.from(e).rawMessage;
  }
  return "accepted";
};

describe("share tokens", () => {
  it("round-trip the claims until the expiry, then say expired", () => {
    const token = signShareToken(key, claims);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(verifyShareToken(key, token, claims.expiresAt - 1)).toEqual(claims);
    expect(messageOf(() => verifyShareToken(key, token, claims.expiresAt))).toBe("share link has expired");
  });

  it("refuse another key's token, and any change to a token, as invalid", () => {
    const token = signShareToken(key, claims);
    expect(messageOf(() => verifyShareToken(randomBytes(32), token, 0))).toBe("share link is invalid");
    // Every single-character change, at every position.
    for (let at = 0; at < token.length; at++) {
      for (const c of "ABCabc019-_.") {
        const changed = `${token.slice(0, at)}${c}${token.slice(at + 1)}`;
        if (changed === token) continue;
        const verdict = messageOf(() => verifyShareToken(key, changed, 0));
        // The last base64url character carries unused low bits: a change there may decode to the
        // same bytes, which is the same token, never other claims.
        if (verdict === "accepted") expect(verifyShareToken(key, changed, 0)).toEqual(claims);
        else expect(verdict).toBe("share link is invalid");
      }
    }
    // A token re-signed with the same key but other claims (escalation to read-write) must fail
    // when only the payload is swapped.
    const other = signShareToken(key, { ...claims, readOnly: false });
    const spliced = `${other.split(".")[0]}.${token.split(".")[1]}`;
    expect(messageOf(() => verifyShareToken(key, spliced, 0))).toBe("share link is invalid");
    for (const junk of ["", ".", "a.b.c", "x".repeat(5000), `${token}.`]) {
      expect(messageOf(() => verifyShareToken(key, junk, 0))).toBe("share link is invalid");
    }
  });
});
