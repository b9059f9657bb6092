import { ENV_NAME_RULE, NAME_RULE, SANDBOX_NAME_RULE } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";
import { type VolumeMountInput, checkVolumeMounts, volumeMountsFromJson } from "../volumes/volume-input.js";

/** What a create request asks for, after validation (from REST JSON or the Connect message). */
export interface CreateSandboxInput {
  name: string;
  image: string;
  cpus: number;
  memoryMb: number;
  diskSizeMb: number;
  env: Record<string, string>;
  secrets: string[];
  files: { guestPath: string; content: Uint8Array; mode: number }[];
  labels: Record<string, string>;
  keepHot: boolean;
  init: string;
  /** The caller's volumes to mount (checked by checkVolumeMounts). */
  volumes?: VolumeMountInput[];
}

const MAX_FILES_BYTES = 512 * 1024;

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

/** Sandbox names follow SANDBOX_NAME_RULE: `web-` is refused here, before a row exists, not by the vmm after it. */
export function checkSandboxName(name: string): void {
  if (!SANDBOX_NAME_RULE.test(name)) {
    throw invalid(
      `invalid name ${JSON.stringify(name.slice(0, 80))}: use 1-63 letters, digits, ".", "_" or "-", starting and ending with a letter or digit`,
    );
  }
}

/** Octal mode as "0644"/"644", a number, or empty (0644). */
export function parseFileMode(mode: unknown): number {
  if (mode === undefined || mode === null || mode === "" || mode === 0) return 0o644;
  if (typeof mode === "number" && Number.isInteger(mode) && mode > 0 && mode <= 0o7777) return mode;
  if (typeof mode === "string" && /^[0-7]{1,4}$/.test(mode)) return Number.parseInt(mode, 8);
  throw invalid(`invalid file mode ${JSON.stringify(mode)}: use an octal string such as "0644"`);
}

/** Checks what the store does not: names, env, file paths and sizes. */
export function checkCreateInput(input: CreateSandboxInput): CreateSandboxInput {
  if (input.name !== "") checkSandboxName(input.name);
  if (input.image !== "" && !NAME_RULE.test(input.image)) {
    throw invalid(`invalid image name ${JSON.stringify(input.image.slice(0, 80))}`);
  }
  if (!Number.isFinite(input.cpus) || input.cpus < 0) throw invalid("cpus must be a positive number");
  if (!Number.isInteger(input.memoryMb) || input.memoryMb < 0)
    throw invalid("memory_mb must be a positive integer");
  if (input.memoryMb !== 0 && input.memoryMb < 128) throw invalid("memory_mb must be at least 128");
  if (!Number.isInteger(input.diskSizeMb) || input.diskSizeMb < 0)
    throw invalid("disk_size_mb must be a positive integer");
  for (const key of Object.keys(input.env)) {
    if (!ENV_NAME_RULE.test(key))
      throw invalid(`invalid environment variable name ${JSON.stringify(key.slice(0, 80))}`);
  }
  for (const name of input.secrets) {
    if (!ENV_NAME_RULE.test(name)) throw invalid(`invalid secret name ${JSON.stringify(name.slice(0, 80))}`);
  }
  let total = 0;
  for (const f of input.files) {
    if (!f.guestPath.startsWith("/") || f.guestPath.split("/").includes("..")) {
      throw invalid(
        `file guest_path ${JSON.stringify(f.guestPath.slice(0, 200))} must be absolute without ".."`,
      );
    }
    total += f.content.byteLength;
  }
  if (total > MAX_FILES_BYTES)
    throw invalid(`files total ${total} bytes; at most ${MAX_FILES_BYTES} at create`);
  if (input.volumes !== undefined) return { ...input, volumes: checkVolumeMounts(input.volumes) };
  return input;
}

// --- REST JSON (v1 field names) ---

const unsupported = ["template_id", "from", "new_volumes", "persistent_volumes", "mounts", "net_policy"];

function field<T>(
  body: Record<string, unknown>,
  key: string,
  kind: string,
  check: (v: unknown) => v is T,
): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw invalid(`${key} must be ${kind}`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean";
const isStringMap = (v: unknown): v is Record<string, string> =>
  typeof v === "object" &&
  v !== null &&
  !Array.isArray(v) &&
  Object.values(v).every((x) => typeof x === "string");
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
const isList = (v: unknown): v is unknown[] => Array.isArray(v);

/** Parses a v1 create body (§5.3). Features that do not exist yet are refused, never ignored. */
export function createInputFromJson(raw: unknown): CreateSandboxInput {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw invalid("request body must be a JSON object");
  const body = raw as Record<string, unknown>;
  for (const key of unsupported) {
    const v = body[key];
    if (v !== undefined && v !== null && v !== "" && !(Array.isArray(v) && v.length === 0)) {
      throw new ConnectError(`${key} is not supported by this server`, Code.Unimplemented);
    }
  }
  if (body["hugepages"] === true)
    throw new ConnectError("hugepages is not supported by this server", Code.Unimplemented);
  const files = (field(body, "files", "a list", isList) ?? []).map((f, i) => {
    if (typeof f !== "object" || f === null) throw invalid(`files[${i}] must be an object`);
    const file = f as Record<string, unknown>;
    const guestPath = file["guest_path"];
    const content = file["content"] ?? "";
    if (typeof guestPath !== "string" || guestPath === "")
      throw invalid(`files[${i}].guest_path is required`);
    if (typeof content !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(content)) {
      throw invalid(`files[${i}].content must be base64`);
    }
    return { guestPath, content: Buffer.from(content, "base64"), mode: parseFileMode(file["mode"]) };
  });
  return checkCreateInput({
    name: field(body, "name", "a string", isString) ?? "",
    image: field(body, "image", "a string", isString) ?? "",
    cpus: field(body, "cpus", "a number", isNumber) ?? 0,
    memoryMb: field(body, "memory_mb", "a number", isNumber) ?? 0,
    diskSizeMb: field(body, "disk_size_mb", "a number", isNumber) ?? 0,
    env: field(body, "env", "an object of strings", isStringMap) ?? {},
    secrets: field(body, "secrets", "a list of names", isStringList) ?? [],
    files,
    labels: field(body, "labels", "an object of strings", isStringMap) ?? {},
    keepHot: field(body, "keep_hot", "a boolean", isBoolean) ?? false,
    init: field(body, "init", "a string", isString) ?? "",
    volumes: volumeMountsFromJson(body["volumes"]),
  });
}
