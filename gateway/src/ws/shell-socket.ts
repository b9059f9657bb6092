import type { SessionConnection } from "@bhatti/agent-client";
import type { Logger } from "@bhatti/runtime";
import { ConnectError } from "@connectrpc/connect";
import type { WebSocket } from "ws";
import type { InteractiveSandbox } from "../sandboxes/session-operations.js";
import type { ServiceClients } from "../service-clients.js";
import type { WakeController } from "../wake/wake-controller.js";
import { sendPaced, stdinPump } from "./flow-control.js";
import { holdWhileOpen } from "./interactive-socket.js";

export interface ShellSocketOptions {
  /** The caller's sandbox, resolved before the upgrade. */
  sandbox: InteractiveSandbox;
  userId: string;
  /** `?session=`: attach to this session, kicking any client already attached. */
  sessionId: string | undefined;
  /** `?new=true`: never reattach. */
  forceNew: boolean;
}

/** Reads `{"type":"resize","rows":R,"cols":C}`; anything else is keystrokes. */
function parseResize(text: string): { rows: number; cols: number } | undefined {
  if (!text.startsWith("{")) return undefined;
  try {
    const msg = JSON.parse(text) as { type?: unknown; rows?: unknown; cols?: unknown };
    if (msg.type === "resize" && typeof msg.rows === "number" && typeof msg.cols === "number") {
      return { rows: msg.rows, cols: msg.cols };
    }
  } catch {
    // keystrokes that happen to start with "{"
  }
  return undefined;
}

/**
 * The WebSocket TTY shell (v1 §5.5): output as binary frames, keystrokes in, resize as JSON
 * text, close 1000 when the shell exits. Closing the socket detaches; the session keeps
 * running and the next connection reattaches to it, replaying the scrollback.
 */
export async function serveShellSocket(
  ws: WebSocket,
  deps: { wake: WakeController; clients: ServiceClients; logger: Logger },
  options: ShellSocketOptions,
): Promise<void> {
  const { wake, clients, logger } = deps;
  const { sandbox } = options;
  const sandboxId = sandbox.sandboxId;
  const startedAt = Date.now();
  let session: SessionConnection | undefined;
  let reattach = false;
  holdWhileOpen(ws, wake, sandboxId, () => session?.detach());

  try {
    ({ session, reattach } = await sandbox.openShell({
      ...(options.sessionId !== undefined ? { sessionId: options.sessionId } : {}),
      forceNew: options.forceNew,
    }));
  } catch (e) {
    const message = ConnectError.from(e).rawMessage;
    if (ws.readyState === ws.OPEN) {
      ws.send(message.startsWith("wake sandbox") ? message : `shell: ${message}`);
      ws.close(1011, "shell unavailable");
    }
    return;
  }
  if (ws.readyState !== ws.OPEN) {
    session.detach();
    return;
  }
  const current = session;
  ws.send(JSON.stringify({ type: "session", session_id: current.sessionId }));

  const feed = stdinPump(
    ws,
    (buf) => current.write(buf),
    () => ws.terminate(),
  );
  ws.on("message", (data, isBinary) => {
    wake.touch(sandboxId);
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!isBinary) {
      const resize = parseResize(buf.toString("utf8"));
      if (resize !== undefined) {
        current.resize(resize.rows, resize.cols);
        return;
      }
    }
    feed(buf);
  });

  let exitCode: number | undefined;
  try {
    for await (const ev of current) {
      if (ev.type === "output") {
        if (ws.readyState !== ws.OPEN) break;
        // The next agent frame is read only once the client took this one (backpressure).
        await sendPaced(ws, ev.data, true);
      } else {
        exitCode = ev.exitCode;
      }
    }
  } catch (e) {
    if (ws.readyState === ws.OPEN) logger.debug("shell session connection ended", { error: e });
  }
  if (exitCode !== undefined && ws.readyState === ws.OPEN) ws.close(1000, "exited");
  else if (ws.readyState === ws.OPEN) ws.close(1011, "session connection lost");
  try {
    await clients.store.appendEvents({
      events: [
        {
          type: "shell.session",
          userId: options.userId,
          sandboxId,
          metaJson: JSON.stringify({
            session_id: current.sessionId,
            reattach,
            duration_s: Math.round((Date.now() - startedAt) / 1000),
          }),
        },
      ],
    });
  } catch (e) {
    logger.warn("recording shell.session failed", { error: e });
  }
}
