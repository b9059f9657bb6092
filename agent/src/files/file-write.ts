import { randomBytes } from "node:crypto";
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fdatasync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  chownSync,
} from "node:fs";
import { dirname } from "node:path";
import { AgentLimits, ErrorText, FrameType, errorTextFor, type StatusResponse } from "@bhatti/agent-protocol";
import type { ExecIdentity } from "../identity.js";
import { credentialsFor } from "../identity.js";
import type { ControlConnection } from "../server/control-connection.js";
import { osErrorText } from "./os-error-text.js";
import { describeJsonError, parseJsonObject } from "./request-json.js";

/**
 * FILE_WRITE_REQ{path, mode, size}, then `size` bytes of STDIN frames → FILE_WRITE_RESP.
 * Atomic: the bytes go to a temp file beside the target, which is flushed, renamed over the
 * target and given to the sandbox user, so a reader sees the old file or the new one, never
 * a partial one. If the connection drops first, the temp file is removed.
 */
export async function handleFileWrite(
  conn: ControlConnection,
  payload: Uint8Array,
  owner: ExecIdentity,
): Promise<void> {
  const { sink, reader } = conn;
  let path: string;
  let size: number;
  let mode: number;
  try {
    const req = parseJsonObject(payload);
    if (typeof req["path"] !== "string" || req["path"] === "")
      throw new SyntaxError("path must be a non-empty string");
    if (typeof req["size"] !== "number" || !Number.isInteger(req["size"]))
      throw new SyntaxError("size must be an integer");
    path = req["path"];
    size = req["size"];
    mode = parseMode(req["mode"]);
  } catch (err) {
    return sink.fail(errorTextFor.badRequest(describeJsonError(err)));
  }
  if (size < 0) return sink.fail(ErrorText.negativeSize);
  if (size > AgentLimits.maxWriteBytes)
    return sink.fail(errorTextFor.fileTooLarge(size, AgentLimits.maxWriteBytes));
  if (isDirectory(path)) return sink.fail(errorTextFor.isDirectory(path));

  const chown = credentialsFor(owner);
  makeParents(dirname(path), chown);
  const tmpPath = `${path}.bhatti-tmp-${randomBytes(4).toString("hex")}`;
  let fd: number;
  try {
    fd = openSync(tmpPath, "w", mode);
    fchmodSync(fd, mode); // exact mode, regardless of the umask
  } catch (err) {
    return sink.fail(osErrorText("open", tmpPath, err));
  }

  let written = 0;
  let failure: string | undefined;
  try {
    while (written < size) {
      let frame: Awaited<ReturnType<typeof reader.read>>;
      try {
        frame = await reader.read();
      } catch {
        frame = null;
      }
      if (frame === null) {
        failure = errorTextFor.connectionLost(written, size);
        break;
      }
      if (frame.type !== FrameType.STDIN) continue;
      const data = frame.payload.subarray(0, size - written);
      let off = 0;
      while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
      written += data.byteLength;
    }
    if (failure === undefined) {
      await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
      if (chown !== undefined) fchownSync(fd, chown.uid, chown.gid);
    }
  } catch (err) {
    failure = osErrorText("write", tmpPath, err);
  } finally {
    closeSync(fd);
  }

  if (failure === undefined) {
    try {
      renameSync(tmpPath, path);
    } catch (err) {
      failure = osErrorText("rename", path, err);
    }
  }
  if (failure !== undefined) {
    try {
      unlinkSync(tmpPath);
    } catch {
      // Already gone.
    }
    return sink.fail(failure);
  }
  const ok: StatusResponse = { status: "ok" };
  sink.sendJson(FrameType.FILE_WRITE_RESP, ok);
  sink.end();
}

/** Octal mode string; absent, invalid or 0 means 0644 (v1). */
function parseMode(value: unknown): number {
  if (typeof value !== "string" || value === "") return 0o644;
  const mode = Number.parseInt(value, 8);
  return Number.isNaN(mode) || mode <= 0 ? 0o644 : mode & 0o7777;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** mkdir -p with 0755; directories it creates belong to the sandbox user. Errors surface at open. */
function makeParents(dir: string, owner: { uid: number; gid: number } | undefined): void {
  let first: string | undefined;
  try {
    first = mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch {
    return;
  }
  if (first === undefined || owner === undefined) return;
  for (let d = dir; d.length >= first.length; d = dirname(d)) {
    try {
      chownSync(d, owner.uid, owner.gid);
    } catch {
      return;
    }
    if (d === first) return;
  }
}
