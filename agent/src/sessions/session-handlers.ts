import { ErrorText, FrameType, type ExecRequest } from "@bhatti/agent-protocol";
import type { AgentContext } from "../agent-context.js";
import { CommandSpecError, resolveCommandSpec, spawnErrorText } from "../exec/command-spec.js";
import type { ControlConnection } from "../server/control-connection.js";
import type { FrameSink } from "../server/frame-sink.js";
import { SessionLimitError } from "./session-registry.js";
import { spawnPipedProcess, spawnPtyProcess, type SessionProcess } from "./session-process.js";

/** EXEC_REQ with tty (PTY session) or session (piped session): start it and attach. */
export async function handleNewSession(
  ctx: AgentContext,
  conn: ControlConnection,
  req: ExecRequest,
): Promise<void> {
  const { sink } = conn;
  let proc: SessionProcess;
  let spec: ReturnType<typeof resolveCommandSpec>;
  try {
    ctx.sessions.reserve();
    spec = resolveCommandSpec(ctx, req);
  } catch (err) {
    if (err instanceof SessionLimitError || err instanceof CommandSpecError) {
      sink.fail(err.message);
      return;
    }
    throw err;
  }
  const tty = req.tty === true;
  try {
    proc = tty
      ? spawnPtyProcess(spec, terminalDimension(req.rows, 24), terminalDimension(req.cols, 80))
      : await spawnPipedProcess(spec);
  } catch (err) {
    sink.fail(spawnErrorText(spec.file, err as NodeJS.ErrnoException));
    return;
  }
  const maxIdleSec = typeof req.max_idle_sec === "number" && req.max_idle_sec > 0 ? req.max_idle_sec : 0;
  const session = ctx.sessions.add(proc, { argv: spec.argv, tty, maxIdleSec });
  ctx.log.info("session started", { session_id: session.id, pid: proc.pid, tty });
  session.attach(conn);
}

/** EXEC_REQ with session_id: reattach, replaying the scrollback first. */
export function handleAttach(
  ctx: AgentContext,
  conn: ControlConnection,
  sessionId: string,
  ifDetached: boolean,
): void {
  const session = ctx.sessions.get(sessionId);
  if (session === undefined) {
    conn.sink.fail(ErrorText.sessionNotFound);
    return;
  }
  if (ifDetached && session.attached) {
    conn.sink.fail(ErrorText.sessionAttached);
    return;
  }
  session.attach(conn);
}

/** EXEC_KILL: SIGKILL the session's process group, reply EXIT(0). */
export function handleSessionKill(ctx: AgentContext, sink: FrameSink, sessionId: unknown): void {
  const session = typeof sessionId === "string" ? ctx.sessions.get(sessionId) : undefined;
  if (session === undefined) {
    sink.fail(ErrorText.sessionNotFound);
    return;
  }
  session.signal("SIGKILL");
  sink.sendExit(0);
  sink.end();
}

export function handleSessionList(ctx: AgentContext, sink: FrameSink): void {
  sink.sendJson(FrameType.EXEC_LIST_RESP, ctx.sessions.list());
  sink.end();
}

/** A requested row or column count, or the fallback when it is not a sane u16. */
export function terminalDimension(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isInteger(value) && value > 0 && value <= 0xffff
    ? value
    : fallback;
}
