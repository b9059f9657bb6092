import { timingSafeEqual } from "node:crypto";
import { ErrorText, FrameType, type FrameReader } from "@bhatti/agent-protocol";
import type { FrameSink } from "./frame-sink.js";

/**
 * Constant-time token comparison. Only the length can leak, and token length is no secret
 * (always 32 hex characters).
 */
export function tokenMatches(presented: Uint8Array, expected: string): boolean {
  const want = Buffer.from(expected);
  const got = Buffer.from(presented.buffer, presented.byteOffset, presented.byteLength);
  if (got.byteLength !== want.byteLength) {
    timingSafeEqual(want, want);
    return false;
  }
  return timingSafeEqual(got, want);
}

/**
 * With a token configured, the first frame must be the right AUTH within `timeoutMs`;
 * otherwise the peer gets ERROR "auth required" and the connection is closed.
 */
export async function authenticate(
  reader: FrameReader,
  sink: FrameSink,
  token: string,
  timeoutMs: number,
): Promise<boolean> {
  if (token === "") return true;
  let ok = false;
  try {
    const frame = await reader.read(timeoutMs);
    ok = frame !== null && frame.type === FrameType.AUTH && tokenMatches(frame.payload, token);
  } catch {
    ok = false;
  }
  if (!ok) sink.fail(ErrorText.authRequired);
  return ok;
}
