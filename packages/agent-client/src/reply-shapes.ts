import type {
  ActivityInfo,
  DetachedExecResult,
  FileInfo,
  FileReadResponse,
  ForwardResponse,
  SessionInfo,
} from "@bhatti/agent-protocol";

/**
 * Shape checks for the agent's JSON replies. The agent runs inside the sandbox, where root can
 * replace it, so its replies are untrusted input: a value that would later become an HTTP
 * header, a protobuf field or an array index is checked here, once, where it arrives.
 */
export type ReplyCheck<T> = (value: unknown) => value is T;

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
/**
 * Permission bits as the agent formats them: octal, at most 4 digits ("0644", "4755"); ""
 * only in a listing's truncation sentinel. Nothing else can reach an `x-file-mode` header.
 */
const isMode = (v: unknown): v is string => typeof v === "string" && /^[0-7]{0,4}$/.test(v);
/** No control characters: names and ids end up in JSON bodies and logs. */
const isText = (v: unknown): v is string => typeof v === "string" && !/[\u0000-\u001f]/.test(v);

export const isFileInfo: ReplyCheck<FileInfo> = (v): v is FileInfo =>
  isObject(v) &&
  typeof v["name"] === "string" &&
  isCount(v["size"]) &&
  isMode(v["mode"]) &&
  typeof v["is_dir"] === "boolean" &&
  isTime(v["mtime"]);

export const isFileReadResponse: ReplyCheck<FileReadResponse> = (v): v is FileReadResponse =>
  isObject(v) && isCount(v["size"]) && isMode(v["mode"]);

export const isSessionInfo: ReplyCheck<SessionInfo> = (v): v is SessionInfo =>
  isObject(v) &&
  isText(v["session_id"]) &&
  typeof v["argv"] === "string" &&
  typeof v["tty"] === "boolean" &&
  typeof v["running"] === "boolean" &&
  typeof v["attached"] === "boolean" &&
  (v["exit_code"] === undefined || Number.isSafeInteger(v["exit_code"])) &&
  isTime(v["created_at"]);

export const isActivityInfo: ReplyCheck<ActivityInfo> = (v): v is ActivityInfo =>
  isObject(v) &&
  isTime(v["last_activity_unix"]) &&
  isCount(v["active_sessions"]) &&
  isCount(v["attached_sessions"]);

export const isDetachedExecResult: ReplyCheck<DetachedExecResult> = (v): v is DetachedExecResult =>
  isObject(v) && isCount(v["pid"]) && typeof v["output_file"] === "string";

export const isForwardResponse: ReplyCheck<ForwardResponse> = (v): v is ForwardResponse =>
  isObject(v) && (v["status"] === "ok" || (v["status"] === "error" && typeof v["message"] === "string"));

export const isStatusOk = (v: unknown): v is { status: string } => isObject(v) && v["status"] === "ok";

/**
 * `null` (Go's nil slice, as v1 agents send it) or a list of at most `max` entries whose every
 * entry passes `check`.
 */
export function listOf<T>(check: ReplyCheck<T>, max = Number.POSITIVE_INFINITY): ReplyCheck<T[] | null> {
  return (v): v is T[] | null =>
    v === null || (Array.isArray(v) && v.length <= max && v.every((e) => check(e)));
}
