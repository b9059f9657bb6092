import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { FrameType, errorTextFor, type FileReadResponse } from "@bhatti/agent-protocol";
import type { ControlConnection } from "../server/control-connection.js";
import { formatMode } from "./file-info.js";
import { osErrorText } from "./os-error-text.js";
import { countField, describeJsonError, parseJsonObject } from "./request-json.js";

const READ_CHUNK = 128 * 1024;
/** Truncated reads pack consecutive lines into frames of up to this size. */
const LINE_FRAME_BYTES = 64 * 1024;

/**
 * FILE_READ_REQ → FILE_READ_RESP{size (whole file), mode} → STDOUT chunks → EXIT(0).
 * With offset/limit/max_bytes the content is cut by lines (offset is 1-based, limit counts
 * lines, max_bytes may cut mid-line); whichever limit is hit first ends the read.
 */
export async function handleFileRead(conn: ControlConnection, payload: Uint8Array): Promise<void> {
  const { sink } = conn;
  let path: string;
  let offset: number;
  let limit: number;
  let maxBytes: number;
  try {
    const req = parseJsonObject(payload);
    if (typeof req["path"] !== "string") throw new SyntaxError("path must be a string");
    path = req["path"];
    offset = countField(req["offset"]);
    limit = countField(req["limit"]);
    maxBytes = countField(req["max_bytes"]);
  } catch (err) {
    return sink.fail(errorTextFor.badRequest(describeJsonError(err)));
  }

  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not hang the agent; it is rejected below.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return sink.fail(osErrorText("open", path, err));
  }
  try {
    const stats = fstatSync(fd);
    if (stats.isDirectory()) return sink.fail(errorTextFor.isDirectory(path));
    if (!stats.isFile()) return sink.fail(errorTextFor.notRegularFile(path));
    const resp: FileReadResponse = { size: stats.size, mode: formatMode(stats.mode) };
    sink.sendJson(FrameType.FILE_READ_RESP, resp);

    const truncated = offset > 0 || limit > 0 || maxBytes > 0;
    const ok = truncated
      ? await sendLines(conn, fd, { first: offset > 0 ? offset : 1, limit, maxBytes })
      : await sendWhole(conn, fd);
    if (!ok) return;
    sink.sendExit(0);
    sink.end();
  } catch (err) {
    sink.fail(osErrorText("read", path, err));
  } finally {
    closeSync(fd);
  }
}

/** False when the host went away (its next write would fail, so the read stops). */
async function sendWhole(conn: ControlConnection, fd: number): Promise<boolean> {
  for (;;) {
    if (conn.sink.closed) return false;
    const chunk = Buffer.allocUnsafe(READ_CHUNK);
    const n = readSync(fd, chunk, 0, READ_CHUNK, null);
    if (n === 0) return true;
    if (!conn.sink.send(FrameType.STDOUT, chunk.subarray(0, n))) await conn.sink.drained();
  }
}

interface LineWindow {
  first: number;
  limit: number;
  maxBytes: number;
}

async function sendLines(conn: ControlConnection, fd: number, window: LineWindow): Promise<boolean> {
  const { sink } = conn;
  let line = 1;
  let emittedLines = 0;
  let emittedBytes = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const ok = sink.send(FrameType.STDOUT, Buffer.concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
    if (!ok) await sink.drained();
  };
  const chunk = Buffer.allocUnsafe(READ_CHUNK);
  for (let stop = false; !stop; ) {
    if (sink.closed) return false;
    const n = readSync(fd, chunk, 0, READ_CHUNK, null);
    if (n === 0) break;
    let pos = 0;
    while (pos < n) {
      const nl = chunk.indexOf(10, pos);
      const end = nl === -1 || nl >= n ? n : nl + 1;
      const completesLine = nl !== -1 && nl < n;
      if (line >= window.first) {
        if (window.limit > 0 && emittedLines >= window.limit) {
          stop = true;
          break;
        }
        let segment = chunk.subarray(pos, end);
        if (window.maxBytes > 0 && emittedBytes + segment.byteLength >= window.maxBytes) {
          segment = segment.subarray(0, window.maxBytes - emittedBytes);
          stop = true;
        }
        pending.push(Buffer.from(segment));
        pendingBytes += segment.byteLength;
        emittedBytes += segment.byteLength;
        if (completesLine) emittedLines++;
        if (pendingBytes >= LINE_FRAME_BYTES) await flush();
        if (stop) break;
      }
      if (completesLine) line++;
      pos = end;
    }
  }
  await flush();
  return !sink.closed;
}
