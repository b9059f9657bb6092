import { statSync } from "node:fs";
import { FrameType, errorTextFor } from "@bhatti/agent-protocol";
import type { FrameSink } from "../server/frame-sink.js";
import { baseNameOf, fileInfoOf } from "./file-info.js";
import { osErrorText } from "./os-error-text.js";
import { describeJsonError, parseJsonObject } from "./request-json.js";

/** Reads the `path` of a FILE_STAT/FILE_LS request, or answers with "bad request". */
export function requestPath(sink: FrameSink, payload: Uint8Array): string | undefined {
  try {
    const req = parseJsonObject(payload);
    if (typeof req["path"] !== "string") throw new SyntaxError("path must be a string");
    return req["path"];
  } catch (err) {
    sink.fail(errorTextFor.badRequest(describeJsonError(err)));
    return undefined;
  }
}

/** FILE_STAT_REQ → FILE_STAT_RESP (follows symlinks, like v1's os.Stat). */
export function handleFileStat(sink: FrameSink, payload: Uint8Array): void {
  const path = requestPath(sink, payload);
  if (path === undefined) return;
  try {
    sink.sendJson(FrameType.FILE_STAT_RESP, fileInfoOf(baseNameOf(path), statSync(path)));
    sink.end();
  } catch (err) {
    sink.fail(osErrorText("stat", path, err));
  }
}
