import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { waitFor } from "../foundation/serve-harness.js";
import { type Product, type SandboxJson, startProduct, waitForSandbox } from "../thermal/product-harness.js";

const isCold = (s: SandboxJson) => s.thermal === "cold";

/** An NDJSON streamed exec: every line as it arrives, and how the response ended. */
function streamExec(product: Product, key: string, id: string, cmd: string[]) {
  const lines: Record<string, unknown>[] = [];
  let resolveEnded: (how: string) => void = () => undefined;
  const ended = new Promise<string>((r) => {
    resolveEnded = r;
  });
  const started = (async () => {
    const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
    const body = Buffer.from(JSON.stringify({ cmd }));
    return new Promise<number>((resolve, reject) => {
      const req = request(
        {
          socketPath: ep.path,
          method: "POST",
          path: `/sandboxes/${id}/exec`,
          headers: {
            authorization: `Bearer ${key}`,
            accept: "application/x-ndjson",
            "content-type": "application/json",
            "content-length": String(body.byteLength),
          },
        },
        (res) => {
          let buf = "";
          res.on("data", (d: Buffer) => {
            buf += d.toString();
            for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
              lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
              buf = buf.slice(nl + 1);
            }
          });
          res.on("end", () => resolveEnded("end"));
          res.on("aborted", () => resolveEnded("aborted"));
          res.on("close", () => resolveEnded("close"));
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", (e) => {
        resolveEnded(`error: ${e.message}`);
        reject(e);
      });
      req.end(body);
    });
  })();
  return { lines, ended, started };
}

/**
 * Key revocation and the cold-wake share through the whole product (gvisor sandboxes):
 * rotating a key closes the WebSockets and ends the NDJSON streams opened with it, and one user
 * waking many cold sandboxes cannot take every cold-wake slot from another user.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("revocation and cold-wake share (product)", () => {
  let product: Product;
  let otherName: string;
  let otherKey: string;
  const otherSandboxes: string[] = [];

  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  const create = async (name: string, key: string) => {
    const res = await product.http("POST", "/sandboxes", {
      body: { name, image: "busybox" },
      headers: as(key),
    });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxJson>();
  };
  const execAs = async (key: string, id: string) => {
    const res = await product.http("POST", `/sandboxes/${id}/exec`, {
      body: { cmd: ["true"] },
      headers: as(key),
    });
    return { status: res.status, text: res.text };
  };

  beforeAll(async () => {
    product = await startProduct({
      flags: [
        "--thermal-warm-after=1000ms",
        "--thermal-cold-after=2000ms",
        "--thermal-tick=200ms",
        // Two slots: each user may hold one.
        "--thermal-max-cold-wakes=2",
      ],
    });
    otherName = `other-${product.env.runId}`;
    const user = await product.http("POST", "/users", {
      body: {
        name: otherName,
        limits: { creates_per_minute: 1000, execs_per_minute: 10_000, max_sandboxes: 10 },
      },
    });
    expect(user.status, user.text).toBe(201);
    otherKey = user.json<{ api_key: string }>().api_key;
  }, 180_000);

  afterAll(async () => {
    if (product === undefined) return;
    const vmm = product.childPid("services/vmm/dist");
    if (vmm !== undefined) process.kill(vmm, "SIGCONT");
    for (const id of otherSandboxes) {
      await product.http("DELETE", `/sandboxes/${id}`, { headers: as(otherKey) }).catch(() => undefined);
    }
    await product.dispose();
  }, 180_000);

  it("rotating a key closes its WebSocket (1008) and ends its NDJSON stream; other users keep theirs", async () => {
    const mine = await create("revoke-mine", otherKey);
    otherSandboxes.push(mine.id);
    const theirs = await create("revoke-theirs", product.userKey);

    const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
    const open = (key: string, id: string) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws+unix://${ep.path}:/sandboxes/${id}/ws`, { headers: as(key) });
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
        ws.once("unexpected-response", (_req, res) =>
          reject(new Error(`upgrade refused: ${res.statusCode}`)),
        );
      });
    const ws = await open(otherKey, mine.id);
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    const bystander = await open(product.userKey, theirs.id);
    const stream = streamExec(product, otherKey, mine.id, ["sh", "-c", "echo ready; sleep 120"]);
    expect(await stream.started).toBe(200);
    await waitFor("the stream's first line", async () => (stream.lines.length > 0 ? true : undefined));
    expect(stream.lines[0]).toEqual({ type: "stdout", data: "ready\n" });

    const rotated = await product.http("POST", `/users/${otherName}/rotate-key`);
    expect(rotated.status, rotated.text).toBe(200);
    const newKey = rotated.json<{ api_key: string }>().api_key;

    expect(await closed).toEqual({ code: 1008, reason: "api key revoked" });
    const how = await stream.ended;
    expect(["end", "aborted", "close"]).toContain(how);
    expect(stream.lines.at(-1)).toEqual({ type: "error", data: "api key revoked" });
    expect(stream.lines.some((l) => l["type"] === "exit")).toBe(false);

    // The old key is refused; the new one works; another user's socket is untouched.
    expect((await product.http("GET", "/sandboxes", { headers: as(otherKey) })).status).toBe(401);
    otherKey = newKey;
    expect((await product.http("GET", `/sandboxes/${mine.id}`, { headers: as(otherKey) })).status).toBe(200);
    expect(bystander.readyState).toBe(WebSocket.OPEN);
    bystander.close();
    await product.http("DELETE", `/sandboxes/${theirs.id}`);
  }, 180_000);

  it("a user waking many cold sandboxes holds at most its share of the cold-wake slots", async () => {
    const [a1, a2] = [await create("share-a1", product.userKey), await create("share-a2", product.userKey)];
    const b1 = await create("share-b1", otherKey);
    otherSandboxes.push(b1.id);
    await Promise.all([a1, a2].map((s) => waitForSandbox(product, s.id, isCold, 60_000)));
    await waitFor(
      "the other user's sandbox to go cold",
      async () => {
        const res = await product.http("GET", `/sandboxes/${b1.id}`, { headers: as(otherKey) });
        return res.status === 200 && isCold(res.json<SandboxJson>()) ? true : undefined;
      },
      60_000,
    );

    // With the vmm stopped, a wake that got a slot stays in flight, holding it.
    const vmm = product.childPid("services/vmm/dist");
    expect(vmm).toBeDefined();
    process.kill(vmm as number, "SIGSTOP");
    let refusedA: { status: number; text: string };
    let heldA: Promise<{ status: number; text: string }>;
    let b: Promise<{ status: number; text: string }>;
    try {
      const pa1 = execAs(product.userKey, a1.id);
      const pa2 = execAs(product.userKey, a2.id);
      // One of the user's two wakes is refused at once (its share is one slot); the other waits.
      const first = await Promise.race([
        pa1.then((r) => ({ r, held: pa2 })),
        pa2.then((r) => ({ r, held: pa1 })),
      ]);
      refusedA = first.r;
      heldA = first.held;
      expect(refusedA.status, refusedA.text).toBe(503);
      expect(refusedA.text).toMatch(/server busy/);

      // The other user's wake still finds a slot. Its wake has reached the thermal service (and
      // been admitted or refused) once the service saw activity on the sandbox.
      const thermal = product.thermal().client;
      const lastActivityMs = async () => {
        const at = (await thermal.getThermal({ sandboxId: b1.id })).sandbox?.lastActivity;
        return at === undefined ? 0 : Number(at.seconds) * 1000 + Math.floor(at.nanos / 1e6);
      };
      const seen = await lastActivityMs();
      b = execAs(otherKey, b1.id);
      await waitFor("the wake of the other user's sandbox to reach the thermal service", async () =>
        (await lastActivityMs()) > seen ? true : undefined,
      );
    } finally {
      process.kill(vmm as number, "SIGCONT");
    }
    const rb = await b;
    expect(rb.status, rb.text).toBe(200);
    const ra = await heldA;
    expect(ra.status, ra.text).toBe(200);
    for (const s of [a1, a2]) await product.http("DELETE", `/sandboxes/${s.id}`);
  }, 240_000);
});
