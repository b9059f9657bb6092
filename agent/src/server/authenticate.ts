import { createHash, timingSafeEqual } from "node:crypto";
import { ErrorText, FrameType, type FrameReader } from "@bhatti/agent-protocol";
import type { FrameSink } from "./frame-sink.js";

/** Constant-time token comparison (hashing first makes the lengths equal). */
export function tokenMatches(presented: Uint8Array, expected: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
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
