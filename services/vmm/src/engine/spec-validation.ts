import { availableParallelism } from "node:os";
import {
  MAX_VOLUMES_PER_SANDBOX,
  SANDBOX_NAME_RULE,
  isSandboxId,
  normalizeVolumeMount,
  volumeMountProblem,
} from "@bhatti/proto";
import type { SandboxSpec, SandboxVolumeSpec } from "./engine.js";
import { EngineError } from "./engine-error.js";

const HOSTNAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const DEFAULT_CPUS = 1;
export const DEFAULT_MEMORY_MB = 1024;
export const MIN_MEMORY_MB = 128;
export const DEFAULT_PIDS_LIMIT = 4096;
const MAX_FILES_BYTES = 4 * 1024 * 1024;

const bad = (message: string) => new EngineError("invalid_argument", message);

/** Checks a spec and fills defaults; throws invalid_argument naming the bad field. */
export function validateSpec(spec: SandboxSpec): SandboxSpec {
  if (!isSandboxId(spec.id)) throw bad(`id must be 16 lowercase hex chars, got "${spec.id}"`);
  if (!SANDBOX_NAME_RULE.test(spec.name))
    throw bad(`name "${spec.name}" must match ${SANDBOX_NAME_RULE.source}`);
  const cpus = spec.cpus === 0 ? DEFAULT_CPUS : spec.cpus;
  const maxCpus = availableParallelism();
  if (!Number.isFinite(cpus) || cpus < 0.1 || cpus > maxCpus) {
    throw bad(`cpus must be between 0.1 and ${maxCpus}, got ${spec.cpus}`);
  }
  const memoryMb = spec.memoryMb === 0 ? DEFAULT_MEMORY_MB : spec.memoryMb;
  if (!Number.isInteger(memoryMb) || memoryMb < MIN_MEMORY_MB || memoryMb > 256 * 1024) {
    throw bad(`memory_mb must be an integer between ${MIN_MEMORY_MB} and 262144, got ${spec.memoryMb}`);
  }
  const pidsLimit = spec.pidsLimit === 0 ? DEFAULT_PIDS_LIMIT : spec.pidsLimit;
  if (!Number.isInteger(pidsLimit) || pidsLimit < 64 || pidsLimit > 1_000_000) {
    throw bad(`pids_limit must be between 64 and 1000000, got ${spec.pidsLimit}`);
  }
  const hostname = spec.hostname === "" ? spec.name.replace(/[._]/g, "-").slice(0, 63) : spec.hostname;
  if (!HOSTNAME.test(hostname)) throw bad(`hostname "${hostname}" is not a valid host name`);
  for (const k of [...Object.keys(spec.env), ...Object.keys(spec.secrets)]) {
    if (!ENV_NAME.test(k)) throw bad(`environment variable name "${k}" is invalid`);
  }
  let fileBytes = 0;
  for (const f of spec.files) {
    if (!f.path.startsWith("/") || f.path.split("/").includes("..")) {
      throw bad(`file path "${f.path}" must be absolute and must not contain ".."`);
    }
    if (f.mode !== undefined && (f.mode < 0 || f.mode > 0o7777))
      throw bad(`file mode of ${f.path} is invalid`);
    fileBytes += f.content.byteLength;
  }
  if (fileBytes > MAX_FILES_BYTES)
    throw bad(`files total ${fileBytes} bytes; the limit is ${MAX_FILES_BYTES}`);
  if (spec.image === "" || !/^[a-z0-9][a-z0-9._-]{0,62}$/.test(spec.image)) {
    throw bad(`image name "${spec.image}" is invalid`);
  }
  const volumes = validateVolumes(spec.volumes ?? []);
  return { ...spec, cpus, memoryMb, pidsLimit, hostname, ...(volumes.length > 0 ? { volumes } : {}) };
}

/** Volume mounts: valid ids, allowed paths, no path or volume twice (the gateway checks this first). */
function validateVolumes(volumes: readonly SandboxVolumeSpec[]): SandboxVolumeSpec[] {
  if (volumes.length > MAX_VOLUMES_PER_SANDBOX) {
    throw bad(`at most ${MAX_VOLUMES_PER_SANDBOX} volumes per sandbox, got ${volumes.length}`);
  }
  const mounts = new Set<string>();
  const ids = new Set<string>();
  return volumes.map((v) => {
    if (!isSandboxId(v.volumeId)) throw bad(`volume id "${v.volumeId.slice(0, 40)}" is invalid`);
    const problem = volumeMountProblem(v.mount);
    if (problem !== undefined) throw bad(problem);
    const mount = normalizeVolumeMount(v.mount);
    if (mounts.has(mount)) throw bad(`two volumes are mounted at ${mount}`);
    if (ids.has(v.volumeId)) throw bad(`volume ${v.name || v.volumeId} is mounted twice`);
    mounts.add(mount);
    ids.add(v.volumeId);
    return { volumeId: v.volumeId, name: v.name, mount, readOnly: v.readOnly };
  });
}
