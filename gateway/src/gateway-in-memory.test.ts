import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  NetworkService,
  SandboxService,
  StoreService,
  ThermalService,
  ThermalState,
  VmmImageService,
  VmmService,
  VmmSnapshotService,
  VmmVolumeService,
} from "@bhatti/proto";
import { ServiceUnreachableError, createLogger, loadConfig } from "@bhatti/runtime";
import { Code, ConnectError, type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { AuthenticatedUser } from "./auth/authenticated-user.js";
import { createAuthInterceptor } from "./connect/auth-interceptor.js";
import { registerSandboxService } from "./connect/sandbox-service.js";
import { MAX_EXEC_STDIN } from "./sandboxes/sandbox-agent.js";
import { type Gateway, createGateway } from "./server.js";
import type { ServiceClients } from "./service-clients.js";

// The gateway's handlers with the store, vmm and thermal services faked in memory
// (createRouterTransport): what each surface answers for a missing sandbox, a limit and an agent
// that replies garbage, with no product processes. The only real peer is a loopback TCP "agent".

const KEY = `bht_${"a".repeat(64)}`;
const SANDBOX = { id: "sb-0123456789ab", name: "box" };
/** Woken while the thermal service is unreachable, and while it answers Unavailable. */
const SPARES = [
  { id: "sb-00000000000a", name: "spare-a" },
  { id: "sb-00000000000b", name: "spare-b" },
];

describe("gateway operations with in-memory service fakes", () => {
  let dir: string;
  let gateway: Gateway;
  let url: string;
  let sandboxApi: Client<typeof SandboxService>;
  let badAgent: net.Server;
  /** Store GetSandbox calls: a request refused by a limit never resolves the sandbox. */
  let lookups: string[];
  const vmmWakes: string[] = [];
  /** Thermal Wake calls: an interactive session refused by a limit never wakes the sandbox. */
  const thermalWakes: string[] = [];
  let thermalReach: "up" | "unreachable" | "answers-unavailable" = "up";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-gwmem-"));
    // An "agent" whose every reply is an invalid frame (length 0): a sandbox root that replaced it.
    badAgent = net.createServer((socket) => {
      socket.on("error", () => socket.destroy());
      socket.once("data", () => socket.end(Buffer.alloc(5)));
    });
    await new Promise<void>((ok) => badAgent.listen(0, "127.0.0.1", ok));
    const agentPort = (badAgent.address() as net.AddressInfo).port;

    const fakes = createRouterTransport(({ service }) => {
      service(StoreService, {
        authenticateApiKey(req) {
          if (req.apiKey !== KEY) throw new ConnectError("unknown key", Code.Unauthenticated);
          return { user: { id: "u1", name: "alice", isAdmin: false }, keySha256: "" };
        },
        getSandbox(req) {
          lookups.push(req.sandbox);
          const found = [SANDBOX, ...SPARES].find((s) => s.id === req.sandbox || s.name === req.sandbox);
          if (req.userId !== "u1" || found === undefined) {
            throw new ConnectError(`sandbox ${JSON.stringify(req.sandbox)} not found`, Code.NotFound);
          }
          return { sandbox: { ...found, userId: "u1", status: "running" } };
        },
      });
      service(ThermalService, {
        wake: (req) => {
          thermalWakes.push(req.sandboxId);
          return { sandbox: hotSandbox(req.sandboxId), from: ThermalState.HOT };
        },
        reportActivity: () => ({}),
      });
      service(VmmService, {
        ensureHot(req) {
          vmmWakes.push(req.id);
          return { sandbox: hotSandbox(req.id), from: ThermalState.HOT };
        },
      });
    });
    const hotSandbox = (id: string) => ({
      id,
      agent: { host: "127.0.0.1", controlPort: agentPort, forwardPort: agentPort, token: "0".repeat(32) },
    });
    const thermal = createClient(ThermalService, fakes);
    const clients: ServiceClients = {
      store: createClient(StoreService, fakes),
      vmm: createClient(VmmService, fakes),
      vmmSnapshots: createClient(VmmSnapshotService, fakes),
      vmmVolumes: createClient(VmmVolumeService, fakes),
      vmmImages: createClient(VmmImageService, fakes),
      // What this process's client throws when it cannot reach the service is not something a
      // service can send, so it is thrown here, on the client side.
      thermal: {
        ...thermal,
        wake: (req, options) => {
          if (thermalReach === "unreachable") {
            return Promise.reject(
              new ServiceUnreachableError("connect ECONNREFUSED thermal.sock", undefined),
            );
          }
          if (thermalReach === "answers-unavailable") {
            return Promise.reject(
              new ConnectError("service unavailable: connect ECONNREFUSED vmm.sock", Code.Unavailable),
            );
          }
          return thermal.wake(req, options);
        },
      },
      network: createClient(NetworkService, fakes),
      close: () => undefined,
    };
    const config = loadConfig({ argv: ["--config=/dev/null", `--socket-dir=${join(dir, "none")}`] }).config;
    gateway = createGateway(config, createLogger({ service: "gateway", write: () => {} }), { clients });
    await new Promise<void>((ok) => gateway.server.listen(0, "127.0.0.1", ok));
    url = `http://127.0.0.1:${(gateway.server.address() as net.AddressInfo).port}`;

    // The Connect service in memory too, behind the gateway's own auth interceptor.
    const ctx = gateway.context;
    sandboxApi = createClient(
      SandboxService,
      createRouterTransport((router) => registerSandboxService(router, ctx), {
        router: { interceptors: [createAuthInterceptor(ctx.auth, ctx.publicProcedures)] },
      }),
    );
  });

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((ok) => (badAgent === undefined ? ok() : badAgent.close(() => ok())));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    lookups = [];
  });

  const auth = { authorization: `Bearer ${KEY}` };
  const callError = async (call: Promise<unknown>): Promise<ConnectError> => {
    const outcome = await call.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(outcome, "the call should have failed").toBeInstanceOf(ConnectError);
    return outcome as ConnectError;
  };
  const drain = async (stream: AsyncIterable<unknown>) => {
    for await (const _ of stream) {
      // consumed for its error
    }
  };
  const rest = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { ...auth, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as { error?: string } };
  };
  const headers = { headers: auth };

  it("answers NotFound for a sandbox the caller does not own, on both surfaces and every operation family", async () => {
    for (const call of [
      () => drain(sandboxApi.exec({ sandbox: "nope", cmd: ["true"] }, headers)),
      () => drain(sandboxApi.readFile({ sandbox: "nope", path: "/etc/hostname" }, headers)),
      () => sandboxApi.statFile({ sandbox: "nope", path: "/" }, headers),
      () => sandboxApi.listSessions({ sandbox: "nope" }, headers),
    ]) {
      expect((await callError(call())).code).toBe(Code.NotFound);
    }
    for (const [method, path, body] of [
      ["POST", "/sandboxes/nope/exec", { cmd: ["true"] }],
      ["GET", "/sandboxes/nope/files?path=/etc/hostname", undefined],
      ["GET", "/sandboxes/nope/sessions", undefined],
    ] as const) {
      const res = await rest(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ error: 'sandbox "nope" not found' });
    }
  });

  it("refuses a request over a limit before resolving or waking the sandbox", async () => {
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => drain(sandboxApi.exec({ sandbox: SANDBOX.name, cmd: [] }, headers)), /cmd required/],
      [
        () =>
          drain(
            sandboxApi.exec(
              { sandbox: SANDBOX.name, cmd: ["cat"], stdin: new Uint8Array(MAX_EXEC_STDIN + 1) },
              headers,
            ),
          ),
        /stdin larger than/,
      ],
      [
        () => drain(sandboxApi.exec({ sandbox: SANDBOX.name, cmd: ["true"], timeoutSec: 86_401 }, headers)),
        /timeout_sec/,
      ],
      [() => sandboxApi.statFile({ sandbox: SANDBOX.name, path: "" }, headers), /path required/],
      [() => sandboxApi.writeFile({ sandbox: SANDBOX.name, path: "/x", mode: "bad" }, headers), /mode/],
    ];
    for (const [call, message] of cases) {
      const err = await callError(call());
      expect(err.code, err.rawMessage).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    const noPath = await rest("GET", `/sandboxes/${SANDBOX.name}/files`);
    expect(noPath).toEqual({ status: 400, body: { error: "path required" } });
    const noCmd = await rest("POST", `/sandboxes/${SANDBOX.name}/exec`, { cmd: [], detach: true });
    expect(noCmd).toEqual({ status: 400, body: { error: "cmd required" } });
    expect(lookups).toEqual([]);
  });

  it("maps an agent's invalid reply to bad gateway (DataLoss, 502) on both surfaces", async () => {
    const err = await callError(sandboxApi.statFile({ sandbox: SANDBOX.name, path: "/" }, headers));
    expect(err.code).toBe(Code.DataLoss);
    expect(err.rawMessage).toBe("bad gateway: the sandbox's agent sent an invalid reply");
    const detached = await callError(
      drain(sandboxApi.exec({ sandbox: SANDBOX.name, cmd: ["true"], detach: true }, headers)),
    );
    expect(detached.code).toBe(Code.DataLoss);

    for (const [method, path, body] of [
      ["POST", `/sandboxes/${SANDBOX.id}/exec`, { cmd: ["true"] }],
      ["GET", `/sandboxes/${SANDBOX.id}/sessions`, undefined],
      ["GET", `/sandboxes/${SANDBOX.id}/files?path=/&ls=true`, undefined],
    ] as const) {
      const res = await rest(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(502);
      expect(res.body).toEqual({ error: "bad gateway: the sandbox's agent sent an invalid reply" });
    }
  });

  it("wakes through the vmm only when the thermal service is unreachable, not when it answers Unavailable", async () => {
    try {
      thermalReach = "unreachable";
      // The vmm fallback hands out the (garbage-speaking) agent: the request gets that far.
      expect((await rest("GET", `/sandboxes/${SPARES[0]?.name}/sessions`)).status).toBe(502);
      expect(vmmWakes).toEqual([SPARES[0]?.id]);

      // Same code, same words, but an answer from a running thermal service: no fallback.
      thermalReach = "answers-unavailable";
      const refused = await rest("GET", `/sandboxes/${SPARES[1]?.name}/sessions`);
      expect(refused.status).toBe(503);
      expect(vmmWakes).toEqual([SPARES[0]?.id]);
    } finally {
      thermalReach = "up";
    }
  });

  describe("interactive sessions (the WebSocket shell and piped exec)", () => {
    let user: AuthenticatedUser;
    beforeAll(async () => {
      user = await gateway.context.auth.authenticate(auth.authorization, {
        remoteAddr: "127.0.0.1",
        path: "/",
      });
    });
    /** The HTTP status a WebSocket upgrade is refused with. */
    const upgradeStatus = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${url.replace("http", "ws")}${path}`, { headers: auth });
        ws.on("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          ws.terminate();
        });
        ws.on("open", () => {
          ws.terminate();
          reject(new Error(`upgrade of ${path} was accepted`));
        });
        ws.on("error", () => undefined);
      });

    it("answers NotFound for a sandbox the caller does not own, and 404 before any upgrade", async () => {
      const err = await callError(gateway.context.runtime.agent.interactive(user, "nope"));
      expect(err.code).toBe(Code.NotFound);
      expect(err.rawMessage).toBe('sandbox "nope" not found');
      expect(await upgradeStatus("/sandboxes/nope/ws")).toBe(404);
      expect(await upgradeStatus("/sandboxes/nope/exec/ws")).toBe(404);
      expect(lookups).toEqual(["nope", "nope", "nope"]);
    });

    it("refuses a piped session over a limit before waking the sandbox", async () => {
      const sandbox = await gateway.context.runtime.agent.interactive(user, SANDBOX.name);
      expect(sandbox.sandboxId).toBe(SANDBOX.id);
      const wakesBefore = [...thermalWakes];
      for (const [input, message] of [
        [{ cmd: [], maxIdleSec: 60 }, /cmd required/],
        [{ cmd: ["cat"], maxIdleSec: -1 }, /max_idle_sec/],
      ] as const) {
        const err = await callError(sandbox.openPiped({ cmd: [...input.cmd], maxIdleSec: input.maxIdleSec }));
        expect(err.code, err.rawMessage).toBe(Code.InvalidArgument);
        expect(err.rawMessage).toMatch(message);
      }
      expect(thermalWakes).toEqual(wakesBefore);
    });

    it("maps an agent's invalid reply to bad gateway (DataLoss) for every way of opening a session", async () => {
      const sandbox = await gateway.context.runtime.agent.interactive(user, SANDBOX.id);
      for (const open of [
        () => sandbox.openShell({ forceNew: false }),
        () => sandbox.openShell({ sessionId: "s-1", forceNew: false }),
        () => sandbox.openPiped({ cmd: ["cat"], maxIdleSec: 60 }),
        () => sandbox.attach("s-1"),
      ]) {
        const err = await callError(open());
        expect(err.code).toBe(Code.DataLoss);
        expect(err.rawMessage).toBe("bad gateway: the sandbox's agent sent an invalid reply");
      }
    });
  });
});
