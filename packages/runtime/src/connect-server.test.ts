import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { StoreService } from "@bhatti/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ServiceUnreachableError, createServiceClient, isServiceUnreachable } from "./connect-client.js";
import { startConnectServer, type ConnectServer } from "./connect-server.js";
import { processHealth } from "./health.js";
import { createLogger } from "./logger.js";
import { REQUEST_ID_HEADER, currentRequestId, withRequestId } from "./request-context.js";
import { SocketInUseError } from "./unix-socket.js";

const logger = createLogger({ service: "test", level: "error" });

describe("Connect over a Unix socket", () => {
  let dir: string;
  let servers: ConnectServer[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-rt-"));
    servers = [];
  });
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const serve = async (socketPath: string, seen: string[] = []) => {
    const server = await startConnectServer({
      socketPath,
      logger,
      routes: (r) =>
        r.service(StoreService, {
          health: () => {
            seen.push(currentRequestId() ?? "none");
            return { health: processHealth("store") };
          },
        }),
    });
    servers.push(server);
    return server;
  };

  it("answers Health and creates the socket with mode 0600", async () => {
    const sock = join(dir, "store.sock");
    await serve(sock);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const { client, close } = createServiceClient(StoreService, sock);
    try {
      const res = await client.health({});
      expect(res.health?.name).toBe("store");
      expect(res.health?.pid).toBe(process.pid);
      expect(res.health?.ready).toBe(true);
    } finally {
      close();
    }
  });

  it("maps a missing socket to Unavailable", async () => {
    const { client, close } = createServiceClient(StoreService, join(dir, "absent.sock"));
    try {
      const err = await client.health({}).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
    } finally {
      close();
    }
  });

  it("tells an unreachable service from one that answers Unavailable, by type", async () => {
    const absent = createServiceClient(StoreService, join(dir, "absent.sock"));
    const sock = join(dir, "busy.sock");
    servers.push(
      await startConnectServer({
        socketPath: sock,
        logger,
        routes: (r) =>
          r.service(StoreService, {
            health: () => {
              // The text an unreachable service gets, sent as an answer: still an answer.
              throw new ConnectError("service unavailable: its own dependency is down", Code.Unavailable);
            },
          }),
      }),
    );
    const busy = createServiceClient(StoreService, sock);
    try {
      const down = await absent.client.health({}).catch((e: unknown) => e);
      expect(isServiceUnreachable(down)).toBe(true);
      expect(down).toBeInstanceOf(ServiceUnreachableError);
      expect(down).toBeInstanceOf(ConnectError);
      expect((down as ConnectError).code).toBe(Code.Unavailable);
      const answered = await busy.client.health({}).catch((e: unknown) => e);
      expect((answered as ConnectError).code).toBe(Code.Unavailable);
      expect(isServiceUnreachable(answered)).toBe(false);
      expect(answered instanceof ServiceUnreachableError).toBe(false);
    } finally {
      absent.close();
      busy.close();
    }
  });

  it("refuses to take over a live socket but reclaims a stale one", async () => {
    const sock = join(dir, "live.sock");
    const squatter = createServer();
    await new Promise<void>((ok) => squatter.listen(sock, ok));
    await expect(serve(sock)).rejects.toBeInstanceOf(SocketInUseError);
    // Simulate a killed owner: the file stays, nobody listens.
    const stale = join(dir, "stale.sock");
    const dead = createServer();
    await new Promise<void>((ok) => dead.listen(stale, ok));
    // Closing a net server unlinks the file, so re-create a dangling socket file another way.
    squatter.close();
    await new Promise<void>((ok) => dead.close(() => ok()));
    const { execFileSync } = await import("node:child_process");
    execFileSync("python3", [
      "-c",
      `import socket;s=socket.socket(socket.AF_UNIX);s.bind(${JSON.stringify(stale)})`,
    ]);
    expect(statSync(stale).isSocket()).toBe(true);
    await serve(stale);
    const { client, close } = createServiceClient(StoreService, stale);
    try {
      expect((await client.health({})).health?.name).toBe("store");
    } finally {
      close();
    }
  });

  it("carries the caller's request id to the server", async () => {
    const sock = join(dir, "rid.sock");
    const seen: string[] = [];
    await serve(sock, seen);
    const { client, close } = createServiceClient(StoreService, sock);
    try {
      await withRequestId("req_0123456789abcdef", () => client.health({}));
      await client.health({}, { headers: { [REQUEST_ID_HEADER]: "bad id with spaces" } });
      expect(seen[0]).toBe("req_0123456789abcdef");
      expect(seen[1]).toMatch(/^req_[0-9a-f]{16}$/);
    } finally {
      close();
    }
  });

  it("runs the service's interceptors inside the request context", async () => {
    class Missing extends Error {}
    const sock = join(dir, "mapped.sock");
    const seen: string[] = [];
    servers.push(
      await startConnectServer({
        socketPath: sock,
        logger,
        routes: (r) =>
          r.service(StoreService, {
            health: () => {
              throw new Missing("no such thing");
            },
          }),
        // The service's error mapping: a domain error becomes its Connect code, with its message.
        interceptors: [
          (next) => async (req) => {
            try {
              return await next(req);
            } catch (e) {
              seen.push(currentRequestId() ?? "none");
              if (e instanceof Missing) throw new ConnectError(e.message, Code.NotFound);
              throw e;
            }
          },
        ],
      }),
    );
    const { client, close } = createServiceClient(StoreService, sock);
    try {
      const err = await withRequestId("req_00000000000000aa", () =>
        client.health({}).catch((e: unknown) => ConnectError.from(e)),
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.NotFound);
      expect((err as ConnectError).rawMessage).toBe("no such thing");
      expect(seen).toEqual(["req_00000000000000aa"]);
    } finally {
      close();
    }
  });

  it("applies a deadline to every call", async () => {
    const sock = join(dir, "slow.sock");
    servers.push(
      await startConnectServer({
        socketPath: sock,
        logger,
        routes: (r) =>
          r.service(StoreService, {
            health: async (_req, ctx) => {
              await new Promise((ok) => setTimeout(ok, 5000).unref());
              ctx.signal.throwIfAborted();
              return {};
            },
          }),
      }),
    );
    const { client, close } = createServiceClient(StoreService, sock, { defaultTimeoutMs: 100 });
    try {
      const err = ConnectError.from(await client.health({}).catch((e: unknown) => e));
      expect(err.code).toBe(Code.DeadlineExceeded);
    } finally {
      close();
    }
  });
});
