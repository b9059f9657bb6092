// The public REST API's JSON shapes (v1 field names), each one function of the proto message.
// The gateway's REST routes and `bhatti --json` both print through these, so the two never drift;
// the OpenAPI schemas in gateway/src/openapi describe exactly these objects.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Event, MetricsSnapshot } from "./gen/bhatti/v1/admin_pb.js";
import type { ImageTask } from "./gen/bhatti/v1/image_pb.js";
import type { FileInfo, Image, Sandbox, SessionInfo } from "./gen/bhatti/v1/sandbox_pb.js";
import type { SecretInfo } from "./gen/bhatti/v1/secret_pb.js";
import type { Snapshot } from "./gen/bhatti/v1/snapshot_pb.js";
import type { User } from "./gen/bhatti/v1/user_pb.js";
import type { Volume } from "./gen/bhatti/v1/volume_pb.js";
export { type PublishedPortJson, publishedPortJson } from "./publish-json.js";

/** A google.protobuf.Timestamp, from a message or rebuilt from its JSON form. */
export interface TimestampLike {
  readonly seconds: bigint;
  readonly nanos: number;
}

/** ISO 8601 with milliseconds; "" when unset (v1 writes "" for a missing time). */
export function isoTime(t: TimestampLike | undefined): string {
  return t === undefined ? "" : timestampDate(t as Parameters<typeof timestampDate>[0]).toISOString();
}

/** A JSON object from its text; {} for anything else, so a bad row never breaks a listing. */
function parseObject(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json || "{}");
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The fields of a Sandbox the JSON is built from: a Sandbox message is one. */
export type SandboxFields = Pick<
  Sandbox,
  | "id"
  | "name"
  | "templateId"
  | "engineId"
  | "engineMetaJson"
  | "status"
  | "thermal"
  | "thermalSinceMs"
  | "ip"
  | "image"
  | "cpus"
  | "memoryMb"
  | "diskSizeMb"
  | "keepHot"
  | "labels"
  | "createdBy"
> & { readonly createdAt?: TimestampLike | undefined; readonly stoppedAt?: TimestampLike | undefined };

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

export function sandboxJson(s: SandboxFields): SandboxJson {
  const out: SandboxJson = {
    id: s.id,
    name: s.name,
    template_id: s.templateId,
    engine_id: s.engineId,
    status: s.status,
    ip: s.ip,
    engine_meta: parseObject(s.engineMetaJson),
    created_by: s.createdBy,
    created_at: isoTime(s.createdAt),
    keep_hot: s.keepHot,
    cpus: s.cpus,
    memory_mb: s.memoryMb,
    disk_size_mb: s.diskSizeMb,
    image: s.image,
  };
  if (s.stoppedAt !== undefined) out.stopped_at = isoTime(s.stoppedAt);
  if (Object.keys(s.labels).length > 0) out.labels = { ...s.labels };
  if (s.thermal !== "") out.thermal = s.thermal;
  if (s.thermal !== "" && s.thermalSinceMs > 0n)
    out.thermal_since = new Date(Number(s.thermalSinceMs)).toISOString();
  return out;
}

/** The admin metrics snapshot as `/admin/metrics` and `bhatti admin metrics --json` print it. */
export interface MetricsJson {
  ts: string;
  sandboxes_total: number;
  sandboxes_by_status: Record<string, number>;
  sandboxes_by_thermal: Record<string, number>;
  users_total: number;
  users_with_sandboxes: number;
  sandboxes_per_user: Record<string, number>;
  host_mem_total_mb: number;
  host_mem_available_mb: number;
  host_disk_total_mb: number;
  host_disk_available_mb: number;
  host_load_1m: number;
  events_total: number;
}

export function metricsJson(m: MetricsSnapshot): MetricsJson {
  return {
    ts: isoTime(m.ts),
    sandboxes_total: m.sandboxesTotal,
    sandboxes_by_status: m.sandboxesByStatus,
    sandboxes_by_thermal: m.sandboxesByThermal,
    users_total: m.usersTotal,
    users_with_sandboxes: m.usersWithSandboxes,
    sandboxes_per_user: m.sandboxesPerUser,
    host_mem_total_mb: Number(m.hostMemTotalMb),
    host_mem_available_mb: Number(m.hostMemAvailableMb),
    host_disk_total_mb: Number(m.hostDiskTotalMb),
    host_disk_available_mb: Number(m.hostDiskAvailableMb),
    host_load_1m: m.hostLoad1m,
    events_total: Number(m.eventsTotal),
  };
}

/** One audit event (`/admin/events`, `bhatti admin events --json`). */
export interface EventJson {
  id: number;
  ts: string;
  type: string;
  user_id: string;
  sandbox_id: string;
  meta: unknown;
}

export function eventJson(e: Event): EventJson {
  let meta: unknown = {};
  try {
    meta = JSON.parse(e.metaJson || "{}");
  } catch {
    meta = {};
  }
  return {
    id: Number(e.id),
    ts: isoTime(e.ts),
    type: e.type,
    user_id: e.userId,
    sandbox_id: e.sandboxId,
    meta,
  };
}

/** A user limit's REST name → its field in UserLimits (the `limits` object of /users). */
export const userLimitFields = {
  max_sandboxes: "maxSandboxes",
  max_cpus_per_sandbox: "maxCpusPerSandbox",
  max_memory_mb_per_sandbox: "maxMemoryMbPerSandbox",
  max_volume_storage_mb: "maxVolumeStorageMb",
  max_snapshots: "maxSnapshots",
  max_images: "maxImages",
  creates_per_minute: "createsPerMinute",
  execs_per_minute: "execsPerMinute",
} as const;

export type UserLimitName = keyof typeof userLimitFields;

/** Whole Unix seconds of a timestamp (v1 writes sessions' and files' times as integers); 0 when unset. */
function unixSeconds(t: TimestampLike | undefined): number {
  return t === undefined ? 0 : Number(t.seconds);
}

/** A user with its limits (`/users`); API keys are added by the routes that mint one. */
export function userJson(u: User): Record<string, unknown> {
  const l = u.limits;
  return {
    id: u.id,
    name: u.name,
    is_admin: u.isAdmin,
    created_at: isoTime(u.createdAt),
    limits: Object.fromEntries(
      Object.entries(userLimitFields).map(([name, field]) => [name, l?.[field] ?? 0]),
    ) as Record<UserLimitName, number>,
  };
}

/** A secret record without its value (values are never returned). */
export function secretJson(s: SecretInfo): Record<string, string> {
  return { name: s.name, created_at: isoTime(s.createdAt), updated_at: isoTime(s.updatedAt) };
}

/** An image sandboxes can be created from (`/images`, `bhatti image list --json`). */
export interface ImageJson {
  name: string;
  description: string;
  size_bytes: number;
  built_at: string;
  source: string;
  is_default: boolean;
}

export function imageJson(
  i: Pick<Image, "name" | "description" | "sizeBytes" | "builtAt" | "source" | "isDefault">,
): ImageJson {
  return {
    name: i.name,
    description: i.description,
    size_bytes: Number(i.sizeBytes),
    built_at: i.builtAt,
    source: i.source,
    is_default: i.isDefault,
  };
}

/** An image pull, import or save (`GET /tasks/:id`, `bhatti image pull --json`). */
export interface TaskJson {
  id: string;
  type: string;
  status: string;
  phase: string;
  progress: { bytes: number; layers_done: number; layers_total: number };
  error: string;
  image: string;
  result: string;
  digest: string;
  created_at: string;
  completed_at: string;
}

export function taskJson(t: ImageTask): TaskJson {
  return {
    id: t.id,
    type: t.kind,
    status: t.state,
    phase: t.phase,
    progress: { bytes: Number(t.bytesDone), layers_done: t.layersDone, layers_total: t.layersTotal },
    error: t.error,
    image: t.image,
    result: t.result,
    digest: t.digest,
    created_at: isoTime(t.createdAt),
    completed_at: isoTime(t.finishedAt),
  };
}

/** A TTY or piped session (`/sandboxes/:id/sessions`, `bhatti ps --json`): the agent's v1 JSON. */
export interface SessionJson {
  session_id: string;
  /** The argv joined with spaces. */
  argv: string;
  tty: boolean;
  running: boolean;
  exit_code?: number;
  attached: boolean;
  /** Unix seconds. */
  created_at: number;
}

export function sessionJson(
  s: Pick<SessionInfo, "sessionId" | "command" | "tty" | "running" | "attached" | "exitCode"> & {
    readonly createdAt?: TimestampLike | undefined;
  },
): SessionJson {
  return {
    session_id: s.sessionId,
    argv: s.command,
    tty: s.tty,
    running: s.running,
    ...(s.exitCode !== undefined ? { exit_code: s.exitCode } : {}),
    attached: s.attached,
    created_at: unixSeconds(s.createdAt),
  };
}

/** One directory entry (`/sandboxes/:id/files?ls=true`, `bhatti file ls --json`): the agent's v1 JSON. */
export interface FileEntryJson {
  name: string;
  size: number;
  /** 4-digit octal, e.g. "0644". */
  mode: string;
  is_dir: boolean;
  /** Unix seconds. */
  mtime: number;
}

export function fileEntryJson(
  f: Pick<FileInfo, "name" | "size" | "mode" | "isDir"> & { readonly modifiedAt?: TimestampLike | undefined },
): FileEntryJson {
  return {
    name: f.name,
    size: Number(f.size),
    mode: f.mode,
    is_dir: f.isDir,
    mtime: unixSeconds(f.modifiedAt),
  };
}

/** The REST API's SnapshotRecord JSON (`/snapshots`, `bhatti snapshot … --json`). */
export interface SnapshotJson {
  id: string;
  name: string;
  source_sandbox: string;
  /** memory | filesystem */
  type: string;
  size_mb: number;
  created_at: string;
}

export function snapshotJson(s: Snapshot): SnapshotJson {
  return {
    id: s.id,
    name: s.name,
    source_sandbox: s.sourceSandbox,
    type: s.type,
    size_mb: s.sizeMb,
    created_at: isoTime(s.createdAt),
  };
}

/** A volume with where it is mounted (`/volumes`, `bhatti volume list --json`). */
export function volumeJson(v: Volume): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    size_mb: v.sizeMb,
    status: v.status,
    created_at: isoTime(v.createdAt),
    attachments: v.attachments.map((a) => ({
      sandbox_id: a.sandboxId,
      mount: a.mount,
      read_only: a.readOnly,
      attached_at: isoTime(a.attachedAt),
    })),
  };
}
