import type { AddressInfo, Server, Socket } from "node:net";
import { AgentLimits } from "@bhatti/agent-protocol";
import { ActivityClock } from "./activity.js";
import type { AgentContext } from "./agent-context.js";
import { startHostnameHelper } from "./claim/hostname-helper.js";
import type { ExecIdentity } from "./identity.js";
import { ResidentSpawner } from "./exec/resident-spawner.js";
import { createIdleCollector } from "./idle-gc.js";
import type { AgentLogger } from "./logger.js";
import { createControlServer } from "./server/control-server.js";
import { createForwardServer } from "./server/forward-server.js";
import { removeSudoSocket, startSudoServer } from "./server/sudo-server.js";
import { SessionRegistry } from "./sessions/session-registry.js";

export interface AgentOptions {
  token: string;
  user: ExecIdentity;
  allowRoot: boolean;
  workdir: string;
  baseEnv: Readonly<Record<string, string | undefined>>;
  configEnv: Readonly<Record<string, string>>;
  control: { host: string; port: number };
  forward: { host: string; port: number };
  /** The local sudo channel's Unix socket (every command there runs as root); absent = off. */
  sudoSocket?: string;
  /** Booted as a per-image template: accepts one CLAIM_REQ (claim/claim.ts). */
  template?: boolean;
  authTimeoutMs?: number;
  /** The resident spawner binary (agent/spawner); absent = every command forks Node. */
  spawner?: string;
  /** Where the spawner's private socket directory is made (default: the temp dir). */
  runtimeDir?: string;
  /** Pre-connected stdio connections the spawner keeps (default DEFAULT_STDIO_POOL; 0: none). */
  spawnerPool?: number;
  log: AgentLogger;
}

export interface RunningAgent {
  ctx: AgentContext;
  controlAddress: AddressInfo;
  forwardAddress: AddressInfo;
  /** The sudo channel's socket path when it is on. */
  sudoSocket: string | undefined;
  /** Stops listening and kills every session's process group. */
  close(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const activity = new ActivityClock();
  const collector = createIdleCollector();
  // Authenticated control connections waiting for their request: a host pool's spares, which
  // the host may keep open across a freeze (they count as idle for the GC).
  const waiting = new Set<Socket>();
  const ctx: AgentContext = {
    token: options.token,
    authTimeoutMs: options.authTimeoutMs ?? AgentLimits.authTimeoutMs,
    spareWaiting(socket, isWaiting) {
      if (isWaiting) {
        if (socket.destroyed || waiting.has(socket)) return;
        waiting.add(socket);
        collector.idle();
      } else if (waiting.delete(socket)) {
        collector.busy();
      }
    },
    user: options.user,
    allowRoot: options.allowRoot,
    workdir: options.workdir,
    baseEnv: options.baseEnv,
    configEnv: options.configEnv,
    activity,
    sessions: new SessionRegistry({ activity }),
    log: options.log,
    ...(options.template === true ? { claimable: true, hostnameHelper: startHostnameHelper() } : {}),
    ...(options.spawner !== undefined
      ? {
          spawner: new ResidentSpawner(options.spawner, options.log, options.runtimeDir, options.spawnerPool),
        }
      : {}),
  };
  const control = createControlServer(ctx);
  const forward = createForwardServer(ctx);
  // Open connections (idle spares of a host pool, attached clients) must not hold a stop up.
  const sockets = new Set<Socket>();
  const track = (server: Server) => {
    server.on("connection", (socket: Socket) => {
      sockets.add(socket);
      collector.busy();
      socket.once("close", () => {
        sockets.delete(socket);
        // A waiting spare was already counted idle.
        if (!waiting.delete(socket)) collector.idle();
      });
    });
  };
  track(control);
  track(forward);
  let sudo: Server | undefined;
  try {
    await listen(control, options.control);
    await listen(forward, options.forward);
    if (options.sudoSocket !== undefined) {
      sudo = await startSudoServer(ctx, options.sudoSocket);
      track(sudo);
    }
  } catch (err) {
    control.close();
    forward.close();
    throw err;
  }
  const servers = sudo === undefined ? [control, forward] : [control, forward, sudo];
  // Started once the agent listens (its fork of Node comes after the readiness line); commands
  // that come before its READY use Node's spawn.
  if (ctx.spawner !== undefined) setImmediate(() => ctx.spawner?.start());
  return {
    ctx,
    controlAddress: control.address() as AddressInfo,
    forwardAddress: forward.address() as AddressInfo,
    sudoSocket: options.sudoSocket,
    close: async () => {
      ctx.hostnameHelper?.dispose();
      ctx.spawner?.close();
      ctx.sessions.disposeAll();
      const closed = Promise.all(servers.map(closeServer));
      for (const socket of sockets) socket.destroy();
      await closed;
      if (options.sudoSocket !== undefined) removeSudoSocket(options.sudoSocket);
    },
  };
}

function listen(server: Server, at: { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: at.host, port: at.port, backlog: 511 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
