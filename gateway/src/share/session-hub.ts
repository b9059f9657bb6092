import type { SessionConnection } from "@bhatti/agent-client";
import type { Logger } from "@bhatti/runtime";
import { ConnectError } from "@connectrpc/connect";
import type { WebSocket } from "ws";
import type { InteractiveSandbox } from "../sandboxes/session-operations.js";
import type { ServiceClients } from "../service-clients.js";
import type { WakeController } from "../wake/wake-controller.js";
import { sendPaced, stdinPump } from "../ws/flow-control.js";
import { holdWhileOpen } from "../ws/interactive-socket.js";

/** Output kept for viewers who join a session already attached (the agent's ring is 64 KiB too). */
const REPLAY_BYTES = 64 * 1024;

/**
 * Share viewers of one session share one attachment to it. The agent lets one client attach
 * to a session at a time (a new attach kicks the previous one), so every viewer of a shared
 * session (through any of its links) joins one hub: the hub attaches once, fans the output out
 * to every viewer, replays the last 64 KiB to a viewer that joins later, and writes the input
 * of read-write viewers (a read-only viewer's keystrokes and resizes are dropped here). The
 * slowest viewer paces the output (each send waits on its queue, as for a single shell socket);
 * a viewer that stops answering pings is dropped by the keepalive. The last viewer leaving
 * detaches; the shell keeps running. `bhatti shell --session` on the same session still takes
 * it over, as in v1.
 */
export interface SessionHubs {
  join(ws: WebSocket, options: JoinOptions): void;
  /** Viewers connected to the session now. */
  viewers(sandboxId: string, sessionId: string): number;
}

export interface JoinOptions {
  sandbox: InteractiveSandbox;
  sessionId: string;
  userId: string;
  readOnly: boolean;
}

interface Viewer {
  readonly ws: WebSocket;
  /** Gets output from the pump; set once it was sent the session frame and the replay. */
  live: boolean;
}

interface Hub {
  readonly key: string;
  readonly viewers: Set<Viewer>;
  /** Resolves with the attached session, or undefined once the attach failed. */
  readonly ready: Promise<SessionConnection | undefined>;
  replay: Buffer[];
  replayBytes: number;
  ended: boolean;
}

function bufferOf(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
}

/** `{"type":"resize","rows":R,"cols":C}` as sent by the page, or undefined. */
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

export function createSessionHubs(deps: {
  wake: WakeController;
  clients: ServiceClients;
  logger: Logger;
}): SessionHubs {
  const { wake, clients, logger } = deps;
  const hubs = new Map<string, Hub>();

  const keep = (hub: Hub, data: Buffer) => {
    hub.replay.push(data);
    hub.replayBytes += data.length;
    while (hub.replayBytes - (hub.replay[0]?.length ?? 0) >= REPLAY_BYTES && hub.replay.length > 1) {
      hub.replayBytes -= hub.replay.shift()?.length ?? 0;
    }
  };

  const end = (hub: Hub, code: number, reason: string) => {
    hub.ended = true;
    if (hubs.get(hub.key) === hub) hubs.delete(hub.key);
    for (const v of hub.viewers) if (v.ws.readyState === v.ws.OPEN) v.ws.close(code, reason);
  };

  /** Reads the session until it ends, sending every output frame to every viewer. */
  const pump = async (hub: Hub, session: SessionConnection, options: JoinOptions) => {
    const startedAt = Date.now();
    let exitCode: number | undefined;
    try {
      for await (const ev of session) {
        if (ev.type === "output") {
          keep(hub, ev.data);
          const live = [...hub.viewers].filter((v) => v.live);
          await Promise.all(live.map((v) => sendPaced(v.ws, ev.data, true)));
        } else {
          exitCode = ev.exitCode;
        }
      }
    } catch (e) {
      if (!hub.ended) logger.debug("shared session connection ended", { error: e });
    }
    if (!hub.ended) {
      if (exitCode !== undefined) end(hub, 1000, "exited");
      else end(hub, 1011, "session connection lost");
    }
    try {
      await clients.store.appendEvents({
        events: [
          {
            type: "shell.session",
            userId: options.userId,
            sandboxId: options.sandbox.sandboxId,
            metaJson: JSON.stringify({
              session_id: session.sessionId,
              reattach: true,
              shared: true,
              duration_s: Math.round((Date.now() - startedAt) / 1000),
            }),
          },
        ],
      });
    } catch (e) {
      logger.warn("recording shell.session failed", { error: e });
    }
  };

  const open = (key: string, options: JoinOptions): Hub => {
    const hub: Hub = {
      key,
      viewers: new Set(),
      ready: options.sandbox.openShell({ sessionId: options.sessionId, forceNew: false }).then(
        ({ session }) => {
          if (hub.viewers.size === 0 || hub.ended) {
            // Everyone left while it attached.
            session.detach();
            if (hubs.get(key) === hub) hubs.delete(key);
            hub.ended = true;
            return undefined;
          }
          void pump(hub, session, options);
          return session;
        },
        (e: unknown) => {
          const message = ConnectError.from(e).rawMessage;
          for (const v of hub.viewers) {
            if (v.ws.readyState !== v.ws.OPEN) continue;
            v.ws.send(message.startsWith("wake sandbox") ? message : `shell: ${message}`);
          }
          end(hub, 1011, "shell unavailable");
          return undefined;
        },
      ),
      replay: [],
      replayBytes: 0,
      ended: false,
    };
    hubs.set(key, hub);
    return hub;
  };

  return {
    join(ws, options) {
      const key = `${options.sandbox.sandboxId}/${options.sessionId}`;
      const existing = hubs.get(key);
      const hub = existing !== undefined && !existing.ended ? existing : open(key, options);
      const viewer: Viewer = { ws, live: false };
      hub.viewers.add(viewer);
      holdWhileOpen(ws, wake, options.sandbox.sandboxId, () => {
        hub.viewers.delete(viewer);
        if (hub.viewers.size > 0 || hub.ended) return;
        hub.ended = true;
        if (hubs.get(key) === hub) hubs.delete(key);
        // The last viewer left: let go of the session (it keeps running, detached).
        void hub.ready.then((session) => session?.detach());
      });
      void hub.ready.then((session) => {
        if (session === undefined || ws.readyState !== ws.OPEN) return;
        ws.send(JSON.stringify({ type: "session", session_id: session.sessionId }));
        // Everything the pump read before this viewer went live (the agent's own scrollback
        // replay, then what the others saw), in one frame; later output comes from the pump. Both
        // happen in this one synchronous step, so nothing is lost or sent twice.
        if (hub.replayBytes > 0) ws.send(Buffer.concat(hub.replay), { binary: true });
        viewer.live = true;
        if (options.readOnly) return;
        const feed = stdinPump(
          ws,
          (buf) => session.write(buf),
          () => ws.terminate(),
        );
        ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
          wake.touch(options.sandbox.sandboxId);
          const buf = bufferOf(data);
          if (!isBinary) {
            const resize = parseResize(buf.toString("utf8"));
            if (resize !== undefined) {
              session.resize(resize.rows, resize.cols);
              return;
            }
          }
          feed(buf);
        });
      });
    },
    viewers: (sandboxId, sessionId) => hubs.get(`${sandboxId}/${sessionId}`)?.viewers.size ?? 0,
  };
}
