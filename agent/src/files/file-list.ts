import { lstatSync, opendirSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  AgentLimits,
  FrameType,
  MAX_PAYLOAD_SIZE,
  errorTextFor,
  type FileInfo,
} from "@bhatti/agent-protocol";
import type { FrameSink } from "../server/frame-sink.js";
import { fileInfoOf } from "./file-info.js";
import { requestPath } from "./file-stat.js";
import { osErrorText } from "./os-error-text.js";

/**
 * FILE_LS_REQ → FILE_LS_RESP: entries in directory order (lstat, so links are not followed),
 * at most 10,000; when cut, a sentinel entry "... truncated at N entries (T total)" ends
 * the list. The reply must fit one frame, so very long names can lower N further.
 */
export function handleFileList(
  sink: FrameSink,
  payload: Uint8Array,
  maxEntries: number = AgentLimits.maxListEntries,
): void {
  const path = requestPath(sink, payload);
  if (path === undefined) return;
  try {
    if (!statSync(path).isDirectory()) {
      sink.fail(errorTextFor.notDirectory(path));
      return;
    }
  } catch (err) {
    sink.fail(osErrorText("stat", path, err));
    return;
  }

  const names: string[] = [];
  let total = 0;
  try {
    const dir = opendirSync(path, { bufferSize: 256 });
    try {
      for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
        if (names.length < maxEntries) names.push(entry.name);
        total++;
      }
    } finally {
      dir.closeSync();
    }
  } catch (err) {
    sink.fail(osErrorText("open", path, err));
    return;
  }

  const entries: FileInfo[] = [];
  for (const name of names) {
    try {
      entries.push(fileInfoOf(name, lstatSync(join(path, name))));
    } catch {
      // Deleted between readdir and lstat.
    }
  }
  sink.send(FrameType.FILE_LS_RESP, encodeListing(entries, total, total > names.length));
  sink.end();
}

function sentinel(shown: number, total: number): FileInfo {
  return { name: errorTextFor.listTruncated(shown, total), size: 0, mode: "", is_dir: false, mtime: 0 };
}

function encodeListing(entries: FileInfo[], total: number, truncated: boolean): Buffer {
  let shown = entries.length;
  for (;;) {
    const list = truncated ? [...entries.slice(0, shown), sentinel(shown, total)] : entries;
    const json = Buffer.from(JSON.stringify(list));
    if (json.byteLength <= MAX_PAYLOAD_SIZE) return json;
    // Too big for one frame: drop entries proportionally and mark the list truncated.
    truncated = true;
    shown = Math.max(0, Math.floor((shown * MAX_PAYLOAD_SIZE) / json.byteLength) - 16);
  }
}
