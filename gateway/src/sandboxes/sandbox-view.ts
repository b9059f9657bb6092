import { type Sandbox, type SandboxRecord, SandboxSchema } from "@bhatti/proto";
import { create } from "@bufbuild/protobuf";

/** A sandbox row plus what the engine says about it right now. */
export interface SandboxState {
  readonly record: SandboxRecord;
  /** hot | warm | cold; "" when unknown or not running. */
  readonly thermal: string;
  /** Unix ms the sandbox entered `thermal` (0 when unknown). */
  readonly thermalSinceMs?: number;
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
    engineMetaJson: r.engineMetaJson,
    thermalSinceMs: state.thermal !== "" ? BigInt(Math.trunc(state.thermalSinceMs ?? 0)) : 0n,
    ...(r.createdAt !== undefined ? { createdAt: r.createdAt } : {}),
    ...(r.stoppedAt !== undefined ? { stoppedAt: r.stoppedAt } : {}),
  });
}
