import type { SandboxFields, TimestampLike } from "@bhatti/proto/rest-json";

export type { TimestampLike };

/**
 * The fields of a Sandbox the CLI prints (the ones the REST JSON is built from): a Sandbox message
 * is one, and so is sandboxFromJson's result.
 */
export type SandboxView = SandboxFields;

/** As @bufbuild/protobuf's timestampDate (milliseconds, nanos rounded). */
export function dateOf(ts: TimestampLike): Date {
  return new Date(Number(ts.seconds) * 1000 + Math.round(ts.nanos / 1_000_000));
}

/** An RFC 3339 time as proto3 JSON writes a Timestamp ("2026-12-03T12:00:00.123456789Z"). */
function timestampFromJson(v: unknown): TimestampLike | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(v);
  if (m === null) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: Number((m[2] ?? "").padEnd(9, "0")) };
}

/**
 * A Sandbox from its proto3 JSON form (lowerCamelCase names, defaults omitted, int64 as a string),
 * with the defaults a decoded message would have.
 */
export function sandboxFromJson(json: unknown): SandboxView {
  const o = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : "");
  const num = (k: string) => (o[k] === undefined ? 0 : Number(o[k]));
  const labels = o["labels"];
  return {
    id: str("id"),
    name: str("name"),
    status: str("status"),
    thermal: str("thermal"),
    thermalSinceMs: o["thermalSinceMs"] === undefined ? 0n : BigInt(String(o["thermalSinceMs"])),
    ip: str("ip"),
    image: str("image"),
    cpus: num("cpus"),
    memoryMb: num("memoryMb"),
    diskSizeMb: num("diskSizeMb"),
    keepHot: o["keepHot"] === true,
    labels: typeof labels === "object" && labels !== null ? { ...(labels as Record<string, string>) } : {},
    createdBy: str("createdBy"),
    templateId: str("templateId"),
    engineId: str("engineId"),
    engineMetaJson: str("engineMetaJson"),
    createdAt: timestampFromJson(o["createdAt"]),
    stoppedAt: timestampFromJson(o["stoppedAt"]),
  };
}
