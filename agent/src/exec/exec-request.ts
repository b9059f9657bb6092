import type { ExecRequest } from "@bhatti/agent-protocol";
import { parseJsonObject } from "../files/request-json.js";

/** Validates the shape of an EXEC_REQ; a missing argv is an empty one (v1). */
export function parseExecRequest(payload: Uint8Array): ExecRequest {
  const raw = parseJsonObject(payload);
  const argv = raw["argv"] ?? [];
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === "string")) {
    throw new TypeError("argv must be an array of strings");
  }
  const env = raw["env"];
  if (env !== undefined && env !== null && (typeof env !== "object" || Array.isArray(env))) {
    throw new TypeError("env must be an object of strings");
  }
  if (
    raw["session_id"] !== undefined &&
    raw["session_id"] !== null &&
    typeof raw["session_id"] !== "string"
  ) {
    throw new TypeError("session_id must be a string");
  }
  return { ...(raw as Partial<ExecRequest>), argv } as ExecRequest;
}
