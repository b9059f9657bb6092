import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmmService } from "@bhatti/proto";
import { type ConnectServer, createLogger, createServiceClient, startConnectServer } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImageRegistry } from "../adapters/image-registry.js";
import type { Engine, EngineEvent } from "../engine/engine.js";
import { EngineError, type EngineErrorCode } from "../engine/engine-error.js";
import { engineErrorInterceptor } from "./engine-error-interceptor.js";
import { createVmmHandlers } from "./vmm-handlers.js";

// The vmm's api layer over a real Connect server on a Unix socket: engine errors thrown by any
// handler (unary or streaming) reach the client with the matching Connect code and message.

const ID = "0123456789abcdef";
let nextError: EngineError | undefined;
const fail = async (): Promise<never> => {
  throw nextError ?? new EngineError("internal", "no error set");
};
let streamListener: ((e: EngineEvent) => void) | undefined;
// Only what the calls below reach; every engine call fails with `nextError`.
const engine = {
  stop: fail,
  pause: fail,
  destroy: fail,
  stats: fail,
  status: () => undefined,
  onEvent(l: (e: EngineEvent) => void) {
    streamListener = l;
    return () => {
      streamListener = undefined;
    };
  },
} as unknown as Engine;

describe("vmm api: engine errors mapped by one interceptor", () => {
  let dir: string;
  let server: ConnectServer;
  let client: ReturnType<typeof createServiceClient<typeof VmmService>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-vmm-api-"));
    const handlers = createVmmHandlers({
      engine,
      images: { list: () => [] } as unknown as ImageRegistry,
      defaultImage: "busybox",
      facts: async () => ({}),
    });
    server = await startConnectServer({
      socketPath: join(dir, "vmm.sock"),
      routes: (router) => router.service(VmmService, handlers),
      logger: createLogger({ service: "vmm", level: "error", write: () => undefined }),
      interceptors: [engineErrorInterceptor],
    });
    client = createServiceClient(VmmService, join(dir, "vmm.sock"), { defaultTimeoutMs: 10_000 });
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: [EngineErrorCode, Code][] = [
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["invalid_argument", Code.InvalidArgument],
    ["failed_precondition", Code.FailedPrecondition],
    ["resource_exhausted", Code.ResourceExhausted],
    ["unavailable", Code.Unavailable],
    ["internal", Code.Internal],
  ];
  for (const [engineCode, code] of cases) {
    it(`${engineCode} becomes ${Code[code]}, message kept`, async () => {
      nextError = new EngineError(engineCode, `engine says ${engineCode}`);
      for (const call of [
        () => client.client.stopSandbox({ id: ID }),
        () => client.client.pauseSandbox({ id: ID }),
        () => client.client.sandboxStats({ id: ID }),
      ]) {
        const err = ConnectError.from(await call().catch((e: unknown) => e));
        expect(err.code).toBe(code);
        expect(err.rawMessage).toBe(`engine says ${engineCode}`);
      }
    });
  }

  it("the handlers' own checks keep their codes (bad id, unknown sandbox)", async () => {
    const bad = ConnectError.from(await client.client.stopSandbox({ id: "nope" }).catch((e: unknown) => e));
    expect(bad.code).toBe(Code.InvalidArgument);
    const missing = ConnectError.from(
      await client.client.getSandboxStatus({ id: ID }).catch((e: unknown) => e),
    );
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.rawMessage).toBe(`sandbox ${ID} not found`);
  });

  it("a streaming call delivers its events through the interceptor", async () => {
    const abort = new AbortController();
    const stream = client.client.watchEvents({ sandboxId: "" }, { signal: abort.signal, timeoutMs: 0 });
    const it = stream[Symbol.asyncIterator]();
    const first = it.next();
    // The handler subscribes once the call reaches it; emit when it has.
    while (!streamListener) await new Promise((r) => setImmediate(r));
    streamListener({
      kind: "sandbox.created",
      sandboxId: ID,
      at: 1,
      thermal: "hot",
      durationMs: 2,
      detail: "d",
    });
    const got = await first;
    expect(got.done).toBe(false);
    expect(got.value).toMatchObject({ kind: "sandbox.created", sandboxId: ID, detail: "d" });
    abort.abort();
    await it.return?.();
  });
});
