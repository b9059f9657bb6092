/** Store timestamps: ISO-8601 UTC with milliseconds, which sort correctly as text. */
export function nowIso(): string {
  return new Date().toISOString();
}
