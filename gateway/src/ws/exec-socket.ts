import type { SessionConnection } from "@bhatti/agent-client";
import type { Logger } from "@bhatti/runtime";
import { ConnectError } from "@connectrpc/connect";
import type { RawData, WebSocket } from "ws";
import { agentErrorToConnect } from "../sandboxes/agent-errors.js";
import type { InteractiveSandbox } from "../sandboxes/session-operations.js";
import type { ServiceClients } from "../service-clients.js";
import type { WakeController } from "../wake/wake-controller.js";
import { sendPaced, stdinPump } from "./flow-control.js";
import { holdWhileOpen } from "./interactive-socket.js";

export interface ExecSocketOptions {
  /** The caller's sandbox, resolved before the upgrade. */
  sandbox: InteractiveSandbox;
  userId: string;
  /** `?session=`: reattach to this piped session instead of starting one. */
  sessionId: string | undefined;
}

const FIRST_MESSAGE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_IDLE_SEC = 3600;
/** Stdin a client may send while its command starts (a cold wake can take seconds). */
export const MAX_EARLY_STDIN_BYTES = 1024 * 1024;

interface StartMessage {
  cmd: string[];
  env?: Record<string, string>;
  maxIdleSec: number;
}

const toBuffer = (data: RawData): Buffer =>
  Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);

function firstMessage(ws: WebSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error("no command within 10s"));
    }, FIRST_MESSAGE_TIMEOUT_MS);
    const onMessage = (data: RawData) => {
      cleanup();
      resolve(toBuffer(data));
    };
    const onClose = () => {
      cleanup();
      reject(new Error("closed"));
    };
    const cleanup = () => {
      clearTimeout(timer);
      ws.off("message", onMessage);
      ws.off("close", onClose);
    };
    ws.on("message", onMessage);
    ws.on("close", onClose);
  });
}

function parseStart(buf: Buffer): StartMessage | undefined {
  try {
    const msg = JSON.parse(buf.toString("utf8")) as Record<string, unknown>;
    const cmd = msg["cmd"];
    if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((a) => typeof a === "string")) return undefined;
    const env = msg["env"];
    const maxIdle = msg["max_idle_sec"];
    return {
      cmd,
      ...(typeof env === "object" && env !== null && !Array.isArray(env)
        ? { env: env as Record<string, string> }
        : {}),
      maxIdleSec: typeof maxIdle === "number" && maxIdle >= 0 ? maxIdle : DEFAULT_MAX_IDLE_SEC,
    };
  } catch {
    return undefined;
  }
}

/**
 * The piped-session WebSocket (v1 §5.6): the first client message starts the command (or
 * `?session=` reattaches), output goes out as text frames, client messages are stdin, and
 * the exit code ends the stream before a 1000 close.
 */
export async function serveExecSocket(
  ws: WebSocket,
  deps: { wake: WakeController; clients: ServiceClients; logger: Logger },
  options: ExecSocketOptions,
): Promise<void> {
  const { wake, clients, logger } = deps;
  const { sandbox } = options;
  const sandboxId = sandbox.sandboxId;
  let session: SessionConnection | undefined;
  holdWhileOpen(ws, wake, sandboxId, () => session?.detach());
  const fail = (message: string) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ type: "error", message }));
    ws.close(1011, "exec failed");
  };

  let command = "";
  // Stdin sent while the command is starting is kept, not lost, up to a bound.
  const early: Buffer[] = [];
  let earlyBytes = 0;
  let earlyOverflow = false;
  const collect = (data: RawData) => {
    if (earlyOverflow) return;
    const buf = toBuffer(data);
    earlyBytes += buf.byteLength;
    if (earlyBytes <= MAX_EARLY_STDIN_BYTES) {
      early.push(buf);
      return;
    }
    earlyOverflow = true;
    early.length = 0;
    if (ws.readyState !== ws.OPEN) return;
    ws.send(
      JSON.stringify({
        type: "error",
        message: `more than ${MAX_EARLY_STDIN_BYTES} bytes of stdin sent before the command started`,
      }),
    );
    ws.close(1009, "stdin before start too large");
  };
  try {
    if (options.sessionId !== undefined && options.sessionId !== "") {
      session = await sandbox.attach(options.sessionId);
    } else {
      const start = parseStart(await firstMessage(ws));
      if (start === undefined) {
        if (ws.readyState === ws.OPEN) {
          ws.send(JSON.stringify({ error: "cmd required" }));
          ws.close(1008, "cmd required");
        }
        return;
      }
      command = start.cmd.join(" ");
      ws.on("message", collect);
      session = await sandbox.openPiped(start);
    }
  } catch (e) {
    // Agent failures get the API's wording (a stopped agent: "did not answer in time").
    const err = agentErrorToConnect(e);
    fail(
      err instanceof Error && !(err instanceof ConnectError)
        ? err.message
        : ConnectError.from(err).rawMessage,
    );
    return;
  } finally {
    ws.off("message", collect);
  }
  if (ws.readyState !== ws.OPEN) {
    // A client cut off for flooding stdin never used its command: do not leave it running.
    if (earlyOverflow && command !== "") session.kill();
    session.detach();
    return;
  }
  const current = session;
  ws.send(JSON.stringify({ type: "session", session_id: current.sessionId }));
  void clients.store
    .appendEvents({
      events: [
        {
          type: "exec.piped_session",
          userId: options.userId,
          sandboxId,
          metaJson: JSON.stringify({ session_id: current.sessionId, command, reattach: command === "" }),
        },
      ],
    })
    .catch((e: unknown) => logger.warn("recording exec.piped_session failed", { error: e }));

  const feed = stdinPump(
    ws,
    (buf) => current.write(buf),
    () => ws.terminate(),
  );
  for (const buf of early.splice(0)) feed(buf);
  ws.on("message", (data) => {
    wake.touch(sandboxId);
    feed(toBuffer(data));
  });

  try {
    for await (const ev of current) {
      if (ws.readyState !== ws.OPEN) break;
      if (ev.type === "output") {
        // The next agent frame is read only once the client took this one (backpressure).
        await sendPaced(ws, ev.data.toString("utf8"), false);
      } else {
        ws.send(JSON.stringify({ type: "exit", exit_code: ev.exitCode }));
        ws.close(1000, "exited");
        return;
      }
    }
  } catch (e) {
    fail(ConnectError.from(agentErrorToConnect(e)).rawMessage);
    return;
  }
  if (ws.readyState === ws.OPEN) ws.close(1011, "session connection lost");
}
