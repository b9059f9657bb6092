import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { VmmService } from "@bhatti/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ServiceClient, createServiceClient } from "./connect-client.js";
import type { RpcHttpVersion } from "./rpc-http-version.js";

const serviceScript = fileURLToPath(new URL("./testing/rpc-test-service.ts", import.meta.url));

/**
 * The inter-service transport across real processes on a real Unix socket, for HTTP/1.1 (the
 * product's) and HTTP/2 (the bench baseline) alike: long-lived server-streaming watches beside
 * many concurrent unary calls, a service SIGKILLed mid-call, and a restart behind the same client.
 */
describe.each(["1.1", "2"] as const)(
  "Connect between processes over HTTP/%s",
  (httpVersion: RpcHttpVersion) => {
    let dir: string;
    let socketPath: string;
    let children: ChildProcess[];
    let clients: ServiceClient<typeof VmmService>[];

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "bhatti-test-rpc-"));
      socketPath = join(dir, "vmm.sock");
      children = [];
      clients = [];
    });
    afterEach(async () => {
      for (const c of clients) c.close();
      await Promise.all(children.map(killAndWait));
      rmSync(dir, { recursive: true, force: true });
    });

    const startService = async () => {
      const child = fork(serviceScript, [socketPath, httpVersion], {
        execArgv: ["--conditions=source", "--import", "tsx"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once("message", () => resolve());
        child.once("exit", (code) => reject(new Error(`test service exited with ${code} before serving`)));
      });
      return child;
    };
    const connect = () => {
      const c = createServiceClient(VmmService, socketPath, { httpVersion, defaultTimeoutMs: 30_000 });
      clients.push(c);
      return c.client;
    };

    it("keeps 20 watches streaming while 200 concurrent unary calls complete", async () => {
      const service = await startService();
      const client = connect();
      const abort = new AbortController();
      const watches = Array.from({ length: 20 }, () =>
        client.watchEvents({}, { signal: abort.signal, timeoutMs: 0 })[Symbol.asyncIterator](),
      );
      try {
        // Each watch is open (its first event arrived) before the unary calls start.
        for (const w of watches) expect((await w.next()).value?.kind).toBe("ready");
        const answers = await Promise.all(Array.from({ length: 200 }, () => client.health({})));
        expect(answers.every((a) => a.health?.pid === service.pid)).toBe(true);
        // Every watch saw one event per call, in order, and is still open.
        for (const w of watches) {
          for (let i = 0; i < 200; i++) expect((await w.next()).value?.kind).toBe("health");
        }
        await client.health({});
        for (const w of watches) expect((await w.next()).value?.kind).toBe("health");
      } finally {
        abort.abort();
        await Promise.all(watches.map((w) => w.return?.().catch(() => undefined)));
      }
    });

    it("gives Unavailable for calls cut by a SIGKILL and for calls while it is down, then reconnects", async () => {
      const first = await startService();
      const client = connect();
      expect((await client.health({})).health?.pid).toBe(first.pid);
      const watch = client.watchEvents({}, { timeoutMs: 0 })[Symbol.asyncIterator]();
      expect((await watch.next()).value?.kind).toBe("ready");

      const hanging = client.getSandboxStatus({ id: "hang" }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      // The hanging call has reached the service once a later call on the same client is answered.
      expect((await client.health({})).health?.pid).toBe(first.pid);
      expect((await watch.next()).value?.kind).toBe("health");
      const watchEnd = watch.next().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      await killAndWait(first);

      expect((await hanging)?.code).toBe(Code.Unavailable);
      expect((await watchEnd)?.code).toBe(Code.Unavailable);
      const whileDown = await client.health({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(whileDown?.code).toBe(Code.Unavailable);

      // A new process on the same socket path: the same client reaches it without being recreated.
      rmSync(socketPath, { force: true });
      const second = await startService();
      expect((await client.health({})).health?.pid).toBe(second.pid);
      const again = client.watchEvents({}, { timeoutMs: 0 })[Symbol.asyncIterator]();
      expect((await again.next()).value?.kind).toBe("ready");
      await again.return?.();
    });

    it("cancels on the caller's abort and on the deadline, and the service stays usable", async () => {
      const service = await startService();
      const client = connect();
      const abort = new AbortController();
      const aborted = client.getSandboxStatus({ id: "hang" }, { signal: abort.signal }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect((await client.health({})).health?.pid).toBe(service.pid);
      abort.abort();
      expect((await aborted)?.code).toBe(Code.Canceled);
      const late = await client.getSandboxStatus({ id: "hang" }, { timeoutMs: 200 }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(late?.code).toBe(Code.DeadlineExceeded);
      expect((await client.health({})).health?.pid).toBe(service.pid);
    });
  },
);

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}
