import { type Server, type Socket, createServer } from "node:net";
import type { Logger } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";
import { watchVmmEvents } from "../wake/vmm-event-watch.js";
import type { WakeController } from "../wake/wake-controller.js";

/** One host forward as the API shows it. */
export interface ForwardInfo {
  readonly sandboxId: string;
  /** The port inside the sandbox. */
  readonly port: number;
  /** The port the gateway listens on. */
  readonly hostPort: number;
  readonly bindAddress: string;
  readonly createdAt: Date;
  /** Relays open right now. */
  readonly connections: number;
}

/**
 * Host forwards (v1 §4.5): a TCP listener on the gateway's host whose every accepted connection
 * is relayed to a port inside one sandbox through the agent's forward port. A connection wakes a
 * warm or cold sandbox (the wake controller), and an open relay pins it hot like an interactive
 * client. Forwards live in this gateway process only: they end on its restart, and on the
 * sandbox's destroy (the vmm's event feed), which also frees the listener.
 */
export interface ForwardManager {
  open(userId: string, sandboxId: string, port: number, hostPort: number | undefined): Promise<ForwardInfo>;
  list(userId: string, sandboxId: string): ForwardInfo[];
  /** Closes the forward of `port` (NotFound if there is none) and its open relays. */
  close(userId: string, sandboxId: string, port: number): Promise<ForwardInfo>;
  /** Closes every forward of the sandbox (destroyed). */
  closeSandbox(sandboxId: string): Promise<void>;
  /** Closes everything (gateway shutdown). */
  closeAll(): Promise<void>;
}

export interface ForwardManagerOptions {
  wake: WakeController;
  clients: ServiceClients;
  logger: Logger;
  /** Address the listeners bind (config `forward_bind_address`). */
  bindAddress: string;
  /** Forwards one sandbox may have at once. */
  maxPerSandbox?: number;
}

interface Forward {
  readonly userId: string;
  readonly sandboxId: string;
  readonly port: number;
  readonly hostPort: number;
  readonly createdAt: Date;
  readonly server: Server;
  readonly sockets: Set<Socket>;
}

/** How often an open relay that carries no bytes still counts as activity. */
const ACTIVITY_INTERVAL_MS = 10_000;

export function checkPort(value: unknown, name: string, allowZero: boolean): number {
  const n = typeof value === "number" ? value : Number.NaN;
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65_535) {
    throw new ConnectError(
      `${name} must be an integer between ${allowZero ? 0 : 1} and 65535`,
      Code.InvalidArgument,
    );
  }
  return n;
}

const infoOf = (f: Forward, bindAddress: string): ForwardInfo => ({
  sandboxId: f.sandboxId,
  port: f.port,
  hostPort: f.hostPort,
  bindAddress,
  createdAt: f.createdAt,
  connections: f.sockets.size,
});

export function createForwardManager(options: ForwardManagerOptions): ForwardManager {
  const { wake, logger, bindAddress } = options;
  const maxPerSandbox = options.maxPerSandbox ?? 32;
  /** By sandbox id, then by sandbox port. */
  const forwards = new Map<string, Map<number, Forward>>();

  /** Relays one accepted connection: wake, dial the agent's forward port, pipe both ways. */
  const relay = async (f: Forward, client: Socket) => {
    client.pause();
    f.sockets.add(client);
    const release = wake.interactive.attach(f.sandboxId);
    const activity = setInterval(() => wake.touch(f.sandboxId), ACTIVITY_INTERVAL_MS);
    activity.unref();
    let upstream: Socket | undefined;
    const done = () => {
      clearInterval(activity);
      release();
      f.sockets.delete(client);
      upstream?.destroy();
      client.destroy();
    };
    client.once("close", done);
    client.on("error", () => client.destroy());
    try {
      upstream = await wake.withAgent(f.sandboxId, (agent) => agent.forward(f.port));
    } catch (e) {
      logger.debug("forward: cannot reach the sandbox port", {
        sandbox_id: f.sandboxId,
        port: f.port,
        error: ConnectError.from(e).rawMessage,
      });
      done();
      return;
    }
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    const up = upstream;
    up.on("error", () => up.destroy());
    up.once("close", () => client.end());
    client.once("end", () => up.end());
    up.once("end", () => client.end());
    // pipe() gives backpressure both ways; `end: false` so half-closes are forwarded above.
    client.pipe(up, { end: false });
    up.pipe(client, { end: false });
    up.on("data", () => wake.touch(f.sandboxId));
    client.resume();
  };

  const listen = (f: Forward, hostPort: number) =>
    new Promise<number>((resolve, reject) => {
      f.server.once("error", reject);
      f.server.listen({ port: hostPort, host: bindAddress, exclusive: true }, () => {
        f.server.off("error", reject);
        const address = f.server.address();
        resolve(typeof address === "object" && address !== null ? address.port : hostPort);
      });
    });

  const shut = (f: Forward) =>
    new Promise<void>((resolve) => {
      for (const s of f.sockets) s.destroy();
      f.server.close(() => resolve());
    });

  const find = (userId: string, sandboxId: string, port: number): Forward => {
    const f = forwards.get(sandboxId)?.get(port);
    if (f === undefined || f.userId !== userId) {
      throw new ConnectError(`no forward of port ${port}`, Code.NotFound);
    }
    return f;
  };

  const closeSandbox = async (sandboxId: string) => {
    const of = forwards.get(sandboxId);
    if (of === undefined) return;
    forwards.delete(sandboxId);
    await Promise.all([...of.values()].map(shut));
  };

  const stopWatching = watchVmmEvents(options.clients, logger, {
    onLive() {},
    onCooled() {},
    onDestroyed(sandboxId) {
      void closeSandbox(sandboxId);
    },
  });

  return {
    async open(userId, sandboxId, portValue, hostPortValue) {
      const port = checkPort(portValue, "port", false);
      const hostPort = hostPortValue === undefined ? 0 : checkPort(hostPortValue, "host_port", true);
      const of = forwards.get(sandboxId) ?? new Map<number, Forward>();
      const existing = of.get(port);
      if (existing !== undefined) {
        // Asking again for the same forward is not an error; another host port for it is.
        if (hostPort === 0 || hostPort === existing.hostPort) return infoOf(existing, bindAddress);
        throw new ConnectError(
          `port ${port} is already forwarded (host port ${existing.hostPort})`,
          Code.AlreadyExists,
        );
      }
      if (of.size >= maxPerSandbox) {
        throw new ConnectError(`at most ${maxPerSandbox} forwards per sandbox`, Code.ResourceExhausted);
      }
      const server = createServer({ pauseOnConnect: true });
      const pending: Forward = {
        userId,
        sandboxId,
        port,
        hostPort,
        createdAt: new Date(),
        server,
        sockets: new Set(),
      };
      let bound: number;
      try {
        bound = await listen(pending, hostPort);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EADDRINUSE") {
          throw new ConnectError(`host port ${hostPort} is in use`, Code.AlreadyExists);
        }
        if (code === "EACCES" || code === "EADDRNOTAVAIL") {
          throw new ConnectError(
            `cannot listen on ${bindAddress}:${hostPort} (${code})`,
            Code.InvalidArgument,
          );
        }
        throw e;
      }
      const f: Forward = { ...pending, hostPort: bound };
      server.on("connection", (socket: Socket) => {
        relay(f, socket).catch((e: unknown) => {
          logger.warn("forward relay failed", { sandbox_id: sandboxId, error: e });
          socket.destroy();
        });
      });
      server.on("error", (e) => logger.warn("forward listener error", { sandbox_id: sandboxId, error: e }));
      // A concurrent open of the same port won the race while this one was binding.
      const raced = (forwards.get(sandboxId) ?? of).get(port);
      if (raced !== undefined) {
        await shut(f);
        throw new ConnectError(`port ${port} is already forwarded`, Code.AlreadyExists);
      }
      const current = forwards.get(sandboxId) ?? of;
      current.set(port, f);
      forwards.set(sandboxId, current);
      logger.info("forward opened", { sandbox_id: sandboxId, port, host_port: bound });
      return infoOf(f, bindAddress);
    },
    list(userId, sandboxId) {
      return [...(forwards.get(sandboxId)?.values() ?? [])]
        .filter((f) => f.userId === userId)
        .sort((a, b) => a.port - b.port)
        .map((f) => infoOf(f, bindAddress));
    },
    async close(userId, sandboxId, port) {
      const f = find(userId, sandboxId, port);
      const info = infoOf(f, bindAddress);
      const of = forwards.get(sandboxId);
      of?.delete(port);
      if (of !== undefined && of.size === 0) forwards.delete(sandboxId);
      await shut(f);
      return info;
    },
    closeSandbox,
    async closeAll() {
      stopWatching();
      const all = [...forwards.keys()];
      await Promise.all(all.map(closeSandbox));
    },
  };
}
