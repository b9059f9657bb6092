/** Parses a JSON request payload; throws a SyntaxError with a readable message. */
export function parseJsonObject(payload: Uint8Array): Record<string, unknown> {
  const value: unknown = JSON.parse(
    Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("utf8"),
  );
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new SyntaxError("expected a JSON object");
  }
  return value as Record<string, unknown>;
}

/** A non-negative integer field, 0 when absent or not positive. */
export function countField(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

export function describeJsonError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
