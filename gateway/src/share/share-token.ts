import { createHmac, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

/** What a share link carries, signed: it grants exactly this session's page and WebSocket. */
export interface ShareClaims {
  /** Share id (`shr_…`), the key of its record (and revocation) in the store. */
  readonly id: string;
  readonly sandboxId: string;
  readonly sessionId: string;
  readonly readOnly: boolean;
  /** Unix seconds. */
  readonly expiresAt: number;
}

interface Payload {
  v: 1;
  id: string;
  sbx: string;
  ses: string;
  ro: boolean;
  exp: number;
}

const MAX_TOKEN_CHARS = 1024;

const mac = (key: Buffer, payload: string) => createHmac("sha256", key).update(payload).digest();

/** `<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, first part))>`: URL-safe, no padding. */
export function signShareToken(key: Buffer, claims: ShareClaims): string {
  const payload: Payload = {
    v: 1,
    id: claims.id,
    sbx: claims.sandboxId,
    ses: claims.sessionId,
    ro: claims.readOnly,
    exp: claims.expiresAt,
  };
  const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `${body}.${mac(key, body).toString("base64url")}`;
}

const invalid = () => new ConnectError("share link is invalid", Code.Unauthenticated);

/**
 * The claims of a token signed with `key` that has not expired at `nowSec`; Unauthenticated
 * otherwise ("invalid" for anything malformed or tampered with, "expired" past its expiry).
 * Revocation is the store's to say.
 */
export function verifyShareToken(key: Buffer, token: string, nowSec: number): ShareClaims {
  if (token.length > MAX_TOKEN_CHARS) throw invalid();
  const dot = token.indexOf(".");
  if (dot <= 0 || dot !== token.lastIndexOf(".")) throw invalid();
  const body = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), "base64url");
  const expected = mac(key, body);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
  let p: Partial<Payload>;
  try {
    p = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Partial<Payload>;
  } catch {
    throw invalid();
  }
  if (
    p.v !== 1 ||
    typeof p.id !== "string" ||
    typeof p.sbx !== "string" ||
    typeof p.ses !== "string" ||
    typeof p.ro !== "boolean" ||
    typeof p.exp !== "number"
  ) {
    throw invalid();
  }
  if (p.exp <= nowSec) throw new ConnectError("share link has expired", Code.Unauthenticated);
  return { id: p.id, sandboxId: p.sbx, sessionId: p.ses, readOnly: p.ro, expiresAt: p.exp };
}
