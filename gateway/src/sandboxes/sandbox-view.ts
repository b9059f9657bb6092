import { type Sandbox, type SandboxRecord, SandboxSchema } from "@bhatti/proto";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";

/** A sandbox row plus what the engine says about it right now. */
export interface SandboxState {
  readonly record: SandboxRecord;
  /** hot | warm | cold; "" when unknown or not running. */
  readonly thermal: string;
  /** Unix ms the sandbox entered `thermal` (0 when unknown). */
  readonly thermalSinceMs?: number;
}

/** The REST API's Sandbox JSON (v1 field names; internal fields never appear). */
export interface SandboxJson {
  id: string;
  name: string;
  template_id: string;
  engine_id: string;
  status: string;
  ip: string;
  engine_meta: Record<string, unknown>;
  created_by: string;
  created_at: string;
  stopped_at?: string;
  keep_hot: boolean;
  cpus: number;
  memory_mb: number;
  disk_size_mb: number;
  image: string;
  labels?: Record<string, string>;
  thermal?: string;
  /** ISO 8601: when the sandbox entered its thermal state. */
  thermal_since?: string;
}

function parseObject(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json || "{}");
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function sandboxJson(state: SandboxState): SandboxJson {
  const r = state.record;
  const out: SandboxJson = {
    id: r.id,
    name: r.name,
    template_id: r.templateId,
    engine_id: r.engineId,
    status: r.status,
    ip: r.ip,
    engine_meta: parseObject(r.engineMetaJson),
    created_by: r.userId,
    created_at: r.createdAt === undefined ? "" : timestampDate(r.createdAt).toISOString(),
    keep_hot: r.keepHot,
    cpus: r.cpus,
    memory_mb: r.memoryMb,
    disk_size_mb: r.diskSizeMb,
    image: r.image,
  };
  if (r.stoppedAt !== undefined) out.stopped_at = timestampDate(r.stoppedAt).toISOString();
  if (Object.keys(r.labels).length > 0) out.labels = { ...r.labels };
  if (state.thermal !== "") out.thermal = state.thermal;
  if (state.thermal !== "" && (state.thermalSinceMs ?? 0) > 0) {
    out.thermal_since = new Date(state.thermalSinceMs ?? 0).toISOString();
  }
  return out;
}

export function sandboxMessage(state: SandboxState): Sandbox {
  const r = state.record;
  return create(SandboxSchema, {
    id: r.id,
    name: r.name,
    status: r.status,
    thermal: state.thermal,
    ip: r.ip,
    image: r.image,
    cpus: r.cpus,
    memoryMb: r.memoryMb,
    diskSizeMb: r.diskSizeMb,
    keepHot: r.keepHot,
    labels: { ...r.labels },
    createdBy: r.userId,
    templateId: r.templateId,
    engineId: r.engineId,
    thermalSinceMs: state.thermal !== "" ? BigInt(Math.trunc(state.thermalSinceMs ?? 0)) : 0n,
    ...(r.createdAt !== undefined ? { createdAt: r.createdAt } : {}),
    ...(r.stoppedAt !== undefined ? { stoppedAt: r.stoppedAt } : {}),
  });
}
