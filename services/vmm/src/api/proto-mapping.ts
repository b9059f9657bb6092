import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type VmmSandboxSchema, type VmmSandboxSpec, thermalStateOf, vmmStatusOf } from "@bhatti/proto";
import type { SandboxInfo, SandboxSpec } from "../engine/engine.js";
import { EngineError } from "../engine/engine-error.js";

export function infoToProto(info: SandboxInfo): MessageInitShape<typeof VmmSandboxSchema> {
  return {
    id: info.id,
    name: info.name,
    image: info.image,
    engine: info.engine,
    status: vmmStatusOf(info.status),
    thermal: thermalStateOf(info.thermal),
    thermalSince: timestampFromMs(info.thermalSince),
    createdAt: timestampFromMs(info.createdAt),
    cpus: info.cpus,
    memoryMb: info.memoryMb,
    userId: info.userId,
    address: info.address,
    gateway: info.gateway,
    agent: {
      host: info.agent.host,
      controlPort: info.agent.controlPort,
      forwardPort: info.agent.forwardPort,
      token: info.agent.token,
    },
    restoreError: info.restoreError ?? "",
    engineDetails: info.engineDetails,
  };
}

/** The proto spec as an engine spec (defaults are filled in by the engine's validation). */
export function specFromProto(
  spec: VmmSandboxSpec | undefined,
  id: string,
  defaultImage: string,
): SandboxSpec {
  if (!spec) throw new ConnectError("spec is required", Code.InvalidArgument);
  const out: SandboxSpec = {
    id,
    name: spec.name,
    image: spec.image || defaultImage,
    cpus: spec.cpus,
    memoryMb: spec.memoryMb,
    pidsLimit: spec.pidsLimit,
    diskSizeMb: spec.diskSizeMb,
    env: { ...spec.env },
    secrets: { ...spec.secrets },
    files: spec.files.map((f) => ({ path: f.path, content: f.content, mode: f.mode === 0 ? 0o644 : f.mode })),
    hostname: spec.hostname,
    userId: spec.userId,
  };
  if (spec.init) out.init = spec.init;
  if (spec.volumes.length > 0) {
    out.volumes = spec.volumes.map((v) => ({
      volumeId: v.volumeId,
      name: v.name,
      mount: v.mount,
      readOnly: v.readOnly,
    }));
  }
  return out;
}

const codes: Record<EngineError["code"], Code> = {
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  invalid_argument: Code.InvalidArgument,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** Engine errors become Connect errors with the matching code; others pass through. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof EngineError) return new ConnectError(e.message, codes[e.code], undefined, undefined, e);
  return ConnectError.from(e);
}
