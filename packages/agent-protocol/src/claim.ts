import type { AgentBootFile } from "./boot-config.js";

/**
 * CLAIM_REQ payload: what a normal boot reads from the boot config, applied instead to an agent
 * restored from a template checkpoint (docs/templates.md).
 */
export interface ClaimRequest {
  /** The sandbox's own token (32 hex): the only one accepted from now on. */
  token: string;
  sandbox_id: string;
  hostname: string;
  env: Record<string, string>;
  secrets: Record<string, string>;
  files: AgentBootFile[];
  /** A shell command started once as the TTY session "init". */
  init?: string;
}

const TOKEN = /^[0-9a-f]{32}$/;

function isStringMap(v: unknown): v is Record<string, string> {
  return (
    v !== null &&
    typeof v === "object" &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === "string")
  );
}

function isFile(v: unknown): v is AgentBootFile {
  if (v === null || typeof v !== "object") return false;
  const f = v as Record<string, unknown>;
  return (
    typeof f["path"] === "string" &&
    f["path"].startsWith("/") &&
    typeof f["content"] === "string" &&
    (f["mode"] === undefined || (typeof f["mode"] === "string" && /^[0-7]{1,4}$/.test(f["mode"])))
  );
}

/** Parses and checks a CLAIM_REQ payload; throws a message naming the bad field. */
export function parseClaimRequest(payload: Uint8Array): ClaimRequest {
  const v = JSON.parse(Buffer.from(payload).toString("utf8")) as Record<string, unknown>;
  if (v === null || typeof v !== "object") throw new Error("claim request must be a JSON object");
  if (typeof v["token"] !== "string" || !TOKEN.test(v["token"]))
    throw new Error("token must be 32 hex chars");
  if (typeof v["sandbox_id"] !== "string") throw new Error("sandbox_id must be a string");
  if (typeof v["hostname"] !== "string") throw new Error("hostname must be a string");
  if (!isStringMap(v["env"])) throw new Error("env must map strings to strings");
  if (!isStringMap(v["secrets"])) throw new Error("secrets must map strings to strings");
  if (!Array.isArray(v["files"]) || !v["files"].every(isFile)) throw new Error("files must be boot files");
  if (v["init"] !== undefined && typeof v["init"] !== "string") throw new Error("init must be a string");
  const req: ClaimRequest = {
    token: v["token"],
    sandbox_id: v["sandbox_id"],
    hostname: v["hostname"],
    env: v["env"],
    secrets: v["secrets"],
    files: v["files"],
  };
  if (typeof v["init"] === "string") req.init = v["init"];
  return req;
}
