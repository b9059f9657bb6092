import { createServer, type Server, type Socket } from "node:net";
import {
  AgentLimits,
  ErrorText,
  FrameError,
  FrameReader,
  FrameType,
  errorTextFor,
  unexpectedFrameText,
  type ExecRequest,
  type Frame,
} from "@bhatti/agent-protocol";
import type { AgentContext } from "../agent-context.js";
import { handleClaim } from "../claim/claim.js";
import { handleDetachedExec } from "../exec/detached-exec.js";
import { parseExecRequest } from "../exec/exec-request.js";
import { handleOneShotExec } from "../exec/oneshot-exec.js";
import { handleFileList } from "../files/file-list.js";
import { handleFileRead } from "../files/file-read.js";
import { handleFileStat } from "../files/file-stat.js";
import { handleFileWrite } from "../files/file-write.js";
import { describeJsonError, parseJsonObject } from "../files/request-json.js";
import {
  handleAttach,
  handleNewSession,
  handleSessionKill,
  handleSessionList,
} from "../sessions/session-handlers.js";
import { authenticate } from "./authenticate.js";
import type { ControlConnection } from "./control-connection.js";
import { FrameSink } from "./frame-sink.js";

export interface ControlServerOptions {
  maxConnections?: number;
}

/** The control port (1024): one operation per connection, at most 50 connections at once. */
export function createControlServer(ctx: AgentContext, options: ControlServerOptions = {}): Server {
  const maxConnections = options.maxConnections ?? AgentLimits.maxControlConnections;
  let active = 0;
  return createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    socket.on("error", () => {
      // Reset by the peer; the handlers see the close.
    });
    active++;
    socket.once("close", () => active--);
    if (active > maxConnections) {
      new FrameSink(socket).fail(ErrorText.connectionLimit);
      return;
    }
    serveControlConnection(ctx, socket).catch((err: unknown) => {
      ctx.log.error("control connection failed", { error: err as Error });
      if (!socket.destroyed) new FrameSink(socket).fail(`internal error: ${(err as Error).message}`);
    });
  });
}

/** Requests a kept connection serves again once they completed (REUSE_REQ). */
const REUSABLE_REQUESTS = new Set<number>([
  FrameType.EXEC_REQ, // one-shot only: see isReusableRequest
  FrameType.FILE_READ_REQ,
  FrameType.FILE_WRITE_REQ,
  FrameType.FILE_STAT_REQ,
  FrameType.FILE_LS_REQ,
  FrameType.ACTIVITY_REQ,
]);

/**
 * Whether a request leaves its connection reusable once it completed: sessions, attaches and
 * detached execs hand the connection over or end it, as do the rarer requests.
 */
function isReusableRequest(frame: Frame): boolean {
  if (!REUSABLE_REQUESTS.has(frame.type)) return false;
  if (frame.type !== FrameType.EXEC_REQ) return true;
  try {
    const req = parseExecRequest(frame.payload);
    return (
      typeof req.session_id !== "string" && req.detach !== true && req.tty !== true && req.session !== true
    );
  } catch {
    return false;
  }
}

async function serveControlConnection(ctx: AgentContext, socket: Socket): Promise<void> {
  const reader = new FrameReader(socket);
  const sink = new FrameSink(socket);
  if (!(await authenticate(reader, sink, ctx.token, ctx.authTimeoutMs))) return;

  const conn: ControlConnection = { socket, reader, sink, reused: false };
  for (let first = true; ; first = false) {
    let frame: Frame | null;
    // Waiting for a request, this connection is idle (a host pool's spare, or kept after one).
    ctx.spareWaiting?.(socket, true);
    try {
      frame = await reader.read();
    } catch (err) {
      // An invalid frame (zero or oversize length, EOF inside a frame): say why, then close.
      if (err instanceof FrameError) sink.fail(err.message);
      else socket.destroy();
      return;
    } finally {
      ctx.spareWaiting?.(socket, false);
    }
    if (frame === null) {
      sink.close();
      return;
    }
    if (frame.type === FrameType.REUSE_REQ && first) {
      conn.reused = true;
      sink.keepOpenBetweenOperations();
      sink.send(FrameType.REUSE_RESP);
      continue;
    }
    if (!conn.reused || !isReusableRequest(frame)) {
      // The last operation of this connection (as every one was in v1).
      sink.closeAfterThisOperation();
      await dispatch(ctx, conn, frame);
      return;
    }
    await dispatch(ctx, conn, frame);
    if (!sink.takeCompleted()) {
      // Failed (ERROR sent), cut short, or the host half-closed: nothing more on this one.
      sink.close();
      return;
    }
  }
}

async function dispatch(ctx: AgentContext, conn: ControlConnection, frame: Frame): Promise<void> {
  const { sink } = conn;
  switch (frame.type) {
    case FrameType.EXEC_REQ: {
      ctx.activity.touch();
      let req: ExecRequest;
      try {
        req = parseExecRequest(frame.payload);
      } catch (err) {
        return sink.fail(errorTextFor.badExecRequest(describeJsonError(err)));
      }
      if (typeof req.session_id === "string")
        return handleAttach(ctx, conn, req.session_id, req.if_detached === true);
      if (req.argv.length === 0) return sink.fail(ErrorText.emptyArgv);
      if (req.detach === true) return handleDetachedExec(ctx, conn, req);
      if (req.tty === true || req.session === true) return handleNewSession(ctx, conn, req);
      return handleOneShotExec(ctx, conn, req);
    }
    case FrameType.EXEC_LIST_REQ:
      return handleSessionList(ctx, sink);
    case FrameType.ACTIVITY_REQ:
      sink.sendJson(FrameType.ACTIVITY_RESP, ctx.sessions.activity(ctx.activity.lastActivityUnix));
      return sink.end();
    case FrameType.EXEC_KILL: {
      let sessionId: unknown;
      try {
        sessionId = parseJsonObject(frame.payload)["session_id"];
      } catch {
        return sink.fail(ErrorText.badKillRequest);
      }
      return handleSessionKill(ctx, sink, sessionId);
    }
    case FrameType.FILE_READ_REQ:
      ctx.activity.touch();
      return handleFileRead(conn, frame.payload);
    case FrameType.FILE_WRITE_REQ:
      ctx.activity.touch();
      return handleFileWrite(conn, frame.payload, ctx.user);
    case FrameType.FILE_STAT_REQ:
      return handleFileStat(sink, frame.payload);
    case FrameType.FILE_LS_REQ:
      return handleFileList(sink, frame.payload);
    case FrameType.CLAIM_REQ:
      return handleClaim(ctx, sink, frame.payload);
    default:
      return sink.fail(unexpectedFrameText(frame.type));
  }
}
