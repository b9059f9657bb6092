import { MAX_VOLUMES_PER_SANDBOX, NAME_RULE, normalizeVolumeMount, volumeMountProblem } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";

/** A volume to mount in a sandbox being created, as the caller asked for it. */
export interface VolumeMountInput {
  /** Volume name or id. */
  name: string;
  mount: string;
  readOnly: boolean;
}

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

/** Checks and normalizes the create's volume list: names, paths, no path or volume twice. */
export function checkVolumeMounts(mounts: readonly VolumeMountInput[]): VolumeMountInput[] {
  if (mounts.length > MAX_VOLUMES_PER_SANDBOX) {
    throw invalid(`at most ${MAX_VOLUMES_PER_SANDBOX} volumes per sandbox, got ${mounts.length}`);
  }
  const paths = new Set<string>();
  const names = new Set<string>();
  return mounts.map((m, i) => {
    if (!NAME_RULE.test(m.name))
      throw invalid(`volumes[${i}].name ${JSON.stringify(m.name.slice(0, 80))} is invalid`);
    const problem = volumeMountProblem(m.mount);
    if (problem !== undefined) throw invalid(`volumes[${i}]: ${problem}`);
    const mount = normalizeVolumeMount(m.mount);
    if (paths.has(mount)) throw invalid(`two volumes are mounted at ${mount}`);
    if (names.has(m.name)) throw invalid(`volume ${m.name} is listed twice`);
    paths.add(mount);
    names.add(m.name);
    return { name: m.name, mount, readOnly: m.readOnly };
  });
}

/** The REST create body's `volumes: [{name, mount, read_only}]`. */
export function volumeMountsFromJson(raw: unknown): VolumeMountInput[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid("volumes must be a list of {name, mount, read_only}");
  return raw.map((v, i) => {
    if (typeof v !== "object" || v === null || Array.isArray(v))
      throw invalid(`volumes[${i}] must be an object`);
    const o = v as Record<string, unknown>;
    const name = o["name"];
    const mount = o["mount"];
    const readOnly = o["read_only"] ?? false;
    if (typeof name !== "string" || name === "") throw invalid(`volumes[${i}].name is required`);
    if (typeof mount !== "string" || mount === "") throw invalid(`volumes[${i}].mount is required`);
    if (typeof readOnly !== "boolean") throw invalid(`volumes[${i}].read_only must be a boolean`);
    return { name, mount, readOnly };
  });
}
