import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ThermalState, type UserLimitsUpdate, type UserSchema, thermalStateOf } from "@bhatti/proto";
import { THERMAL_STATES } from "../domain/sandboxes.js";
import { LIMIT_FIELDS, type UserLimits, type UserRow } from "../domain/users.js";

/** A row's thermal state (text in the database) as the proto enum; UNSPECIFIED for unknown text. */
export function thermalStateOfRow(text: string): ThermalState {
  const name = THERMAL_STATES.find((t) => t === text);
  return name === undefined ? ThermalState.UNSPECIFIED : thermalStateOf(name);
}

export function toTimestamp(iso: string): Timestamp {
  return timestampFromDate(new Date(iso));
}

export function optionalTimestamp(iso: string | null | undefined): Timestamp | undefined {
  return iso ? toTimestamp(iso) : undefined;
}

export function fromTimestamp(ts: Timestamp | undefined): string | undefined {
  return ts === undefined ? undefined : timestampDate(ts).toISOString();
}

type LimitKey =
  | "maxSandboxes"
  | "maxCpusPerSandbox"
  | "maxMemoryMbPerSandbox"
  | "maxVolumeStorageMb"
  | "maxSnapshots"
  | "maxImages"
  | "createsPerMinute"
  | "execsPerMinute";

const camel: Record<(typeof LIMIT_FIELDS)[number], LimitKey> = {
  max_sandboxes: "maxSandboxes",
  max_cpus_per_sandbox: "maxCpusPerSandbox",
  max_memory_mb_per_sandbox: "maxMemoryMbPerSandbox",
  max_volume_storage_mb: "maxVolumeStorageMb",
  max_snapshots: "maxSnapshots",
  max_images: "maxImages",
  creates_per_minute: "createsPerMinute",
  execs_per_minute: "execsPerMinute",
};

export function limitsFromProto(update: UserLimitsUpdate | undefined): Partial<UserLimits> {
  const out: Partial<UserLimits> = {};
  if (!update) return out;
  for (const field of LIMIT_FIELDS) {
    const value = update[camel[field]];
    if (value !== undefined) out[field] = value;
  }
  return out;
}

export function userToProto(row: UserRow): MessageInitShape<typeof UserSchema> {
  const limits: Record<string, number> = {};
  for (const field of LIMIT_FIELDS) limits[camel[field]] = row[field];
  return {
    id: row.id,
    name: row.name,
    isAdmin: row.is_admin === 1,
    limits,
    subnetIndex: row.subnet_index ?? 0,
    createdAt: toTimestamp(row.created_at),
  };
}
