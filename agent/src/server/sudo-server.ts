import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
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
import { CommandSpecError, resolveCommandSpec } from "../exec/command-spec.js";
import { parseExecRequest } from "../exec/exec-request.js";
import { handleOneShotExec } from "../exec/oneshot-exec.js";
import { handleTtyExec } from "../exec/tty-exec.js";
import { describeJsonError } from "../files/request-json.js";
import { terminalDimension } from "../sessions/session-handlers.js";
import type { ControlConnection } from "./control-connection.js";
import { FrameSink } from "./frame-sink.js";

/**
 * The local sudo channel: a Unix socket any process in the sandbox may connect to (mode
 * 0666), speaking the control protocol without AUTH, where every command runs as root. It
 * exists because gVisor ignores setuid bits (and user processes carry no_new_privs), so the
 * image's own sudo cannot work; the sandbox promises passwordless sudo to its only user, so
 * "any local process may run commands as root" is exactly the policy already granted.
 *
 * Only exec is served: one-shot piped exec and one-shot TTY exec (`tty: true`, see
 * tty-exec.ts). Attach, detach and piped sessions get an ERROR; any other first frame gets
 * the protocol's `unexpected frame type 0xNN`. Every command is logged.
 */
export async function startSudoServer(ctx: AgentContext, socketPath: string): Promise<Server> {
  prepareSocketPath(socketPath);
  let active = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on("error", () => {
      // Reset by the peer; the handlers see the close.
    });
    active++;
    socket.once("close", () => active--);
    if (active > AgentLimits.maxControlConnections) {
      new FrameSink(socket).fail(ErrorText.connectionLimit);
      return;
    }
    serveSudoConnection(ctx, socket).catch((err: unknown) => {
      ctx.log.error("sudo connection failed", { error: err as Error });
      if (!socket.destroyed) new FrameSink(socket).fail(`internal error: ${(err as Error).message}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path: socketPath, backlog: 511 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // Every local user may connect: that is the point (see above).
  chmodSync(socketPath, 0o666);
  return server;
}

/** Creates the parent (0755) and removes a stale socket left by a previous agent. */
function prepareSocketPath(socketPath: string): void {
  const parent = dirname(socketPath);
  if (!existsSync(parent)) {
    mkdirSync(parent, { recursive: true, mode: 0o755 });
    chmodSync(parent, 0o755);
  }
  let stale = false;
  try {
    stale = lstatSync(socketPath).isSocket();
  } catch {
    // Nothing there.
  }
  if (stale) unlinkSync(socketPath);
}

/** Removes the socket file once the server is closed (best effort). */
export function removeSudoSocket(socketPath: string): void {
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {
    // Already gone.
  }
}

async function serveSudoConnection(ctx: AgentContext, socket: Socket): Promise<void> {
  const reader = new FrameReader(socket);
  const sink = new FrameSink(socket);
  let frame: Frame | null;
  try {
    // A client that connects and says nothing must not hold a connection slot forever.
    frame = await reader.read(ctx.authTimeoutMs);
  } catch (err) {
    if (err instanceof FrameError) sink.fail(err.message);
    else socket.destroy();
    return;
  }
  if (frame === null) {
    sink.end();
    return;
  }
  if (frame.type !== FrameType.EXEC_REQ) return sink.fail(unexpectedFrameText(frame.type));
  ctx.activity.touch();
  let req: ExecRequest;
  try {
    req = parseExecRequest(frame.payload);
  } catch (err) {
    return sink.fail(errorTextFor.badExecRequest(describeJsonError(err)));
  }
  if (typeof req.session_id === "string") return sink.fail(errorTextFor.sudoUnsupported("attach"));
  if (req.detach === true) return sink.fail(errorTextFor.sudoUnsupported("detached exec"));
  if (req.session === true) return sink.fail(errorTextFor.sudoUnsupported("a piped session"));
  if (req.argv.length === 0) return sink.fail(ErrorText.emptyArgv);

  const conn: ControlConnection = { socket, reader, sink, reused: false };
  const tty = req.tty === true;
  ctx.log.info("sudo exec", { argv: req.argv, cwd: req.cwd, tty });
  if (!tty) return handleOneShotExec(ctx, conn, req, "sudo");
  let spec: ReturnType<typeof resolveCommandSpec>;
  try {
    spec = resolveCommandSpec(ctx, req, "sudo");
  } catch (err) {
    if (err instanceof CommandSpecError) return sink.fail(err.message);
    throw err;
  }
  return handleTtyExec(ctx, conn, spec, terminalDimension(req.rows, 24), terminalDimension(req.cols, 80));
}
