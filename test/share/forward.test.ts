import { randomBytes, createHash } from "node:crypto";
import { type Socket, connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Product,
  type SandboxJson,
  exec,
  startProduct,
  waitForSandbox,
} from "../thermal/product-harness.js";

// Host forwards against the real product: a busybox `nc -ll -e cat` echo server in a gVisor
// sandbox, reached through a listener of the gateway (inside the test's host netns).

interface ForwardJson {
  sandbox_id: string;
  port: number;
  host_port: number;
  address: string;
  connections: number;
}

const ECHO_PORT = 7000;

describe("host forwards", () => {
  let product: Product;

  beforeAll(async () => {
    product = await startProduct({ flags: [] });
  }, 180_000);

  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  const create = async (name: string) => {
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox" } });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxJson>();
  };

  /** Starts the persistent echo server and waits until it accepts (checked from inside the sandbox). */
  const startEcho = async (id: string) => {
    const started = await exec(product, id, [
      "sh",
      "-c",
      `setsid sh -c 'while :; do nc -ll -p ${ECHO_PORT} -e cat; done' </dev/null >/dev/null 2>&1 & echo started`,
    ]);
    expect(started.body.stdout).toContain("started");
    const deadline = Date.now() + 20_000;
    for (;;) {
      const probe = await exec(product, id, [
        "sh",
        "-c",
        `netstat -ltn | grep -q ':${ECHO_PORT} ' && echo up`,
      ]);
      if (probe.body.stdout.includes("up")) return;
      if (Date.now() > deadline) throw new Error("echo server never listened");
      await sleep(100);
    }
  };

  /** A TCP connection to the forward's host port (through the test netns's relay). */
  const dial = async (hostPort: number): Promise<Socket> => {
    const ep = (await product.env.options.dialer.endpoint("127.0.0.1", hostPort)) as { path: string };
    return new Promise((resolve, reject) => {
      const s = connect({ path: ep.path }, () => resolve(s));
      s.once("error", reject);
    });
  };

  /** Sends `payload`, reads back exactly as many bytes, and closes. */
  const echoThrough = async (hostPort: number, payload: Buffer): Promise<Buffer> => {
    const s = await dial(hostPort);
    try {
      const got: Buffer[] = [];
      let size = 0;
      const all = new Promise<Buffer>((resolve, reject) => {
        s.on("data", (d: Buffer) => {
          got.push(d);
          size += d.length;
          if (size >= payload.length) resolve(Buffer.concat(got));
        });
        s.once("close", () => reject(new Error(`closed after ${size} of ${payload.length} bytes`)));
        s.once("error", reject);
      });
      s.write(payload);
      return await all;
    } finally {
      s.destroy();
    }
  };

  it("relays bytes both ways, 5 MB byte-exact, and lists the forward", async () => {
    const sb = await create("fwd-echo");
    await startEcho(sb.id);
    const res = await product.http("POST", `/sandboxes/${sb.id}/forward`, { body: { port: ECHO_PORT } });
    expect(res.status, res.text).toBe(200);
    const fwd = res.json<ForwardJson>();
    expect(fwd.port).toBe(ECHO_PORT);
    expect(fwd.host_port).toBeGreaterThan(0);
    expect(fwd.address).toBe(`127.0.0.1:${fwd.host_port}`);

    const small = await echoThrough(fwd.host_port, Buffer.from("hello through the forward\n"));
    expect(small.toString()).toBe("hello through the forward\n");

    const big = randomBytes(5 << 20);
    const back = await echoThrough(fwd.host_port, big);
    expect(back.length).toBe(big.length);
    expect(createHash("sha256").update(back).digest("hex")).toBe(
      createHash("sha256").update(big).digest("hex"),
    );

    const list = await product.http("GET", `/sandboxes/${sb.id}/forward`);
    expect(list.status).toBe(200);
    expect(list.json<ForwardJson[]>().map((f) => [f.port, f.host_port])).toEqual([
      [ECHO_PORT, fwd.host_port],
    ]);

    // The same forward again is answered with the existing one; another host port for it is 409.
    const again = await product.http("POST", `/sandboxes/${sb.id}/forward`, { body: { port: ECHO_PORT } });
    expect(again.json<ForwardJson>().host_port).toBe(fwd.host_port);

    const del = await product.http("DELETE", `/sandboxes/${sb.id}/forward/${ECHO_PORT}`);
    expect(del.status, del.text).toBe(200);
    // The listener is freed: the same host port can be forwarded again at once.
    const rebound = await product.http("POST", `/sandboxes/${sb.id}/forward`, {
      body: { port: ECHO_PORT + 1, host_port: fwd.host_port },
    });
    expect(rebound.status, rebound.text).toBe(200);
    expect((await product.http("DELETE", `/sandboxes/${sb.id}/forward/${ECHO_PORT}`)).status).toBe(404);
  }, 120_000);

  it("bhatti forward opens, lists (--json) and closes a forward; the CLI prints the local address", async () => {
    const sb = await create("fwd-cli");
    await startEcho(sb.id);
    const opened = await product.cli(["forward", "fwd-cli", String(ECHO_PORT)]);
    expect(opened.code, opened.stderr).toBe(0);
    const m = /^127\.0\.0\.1:(\d+) -> fwd-cli:7000\n$/.exec(opened.stdout);
    expect(m, opened.stdout).not.toBeNull();
    const hostPort = Number(m?.[1]);
    expect((await echoThrough(hostPort, Buffer.from("via cli\n"))).toString()).toBe("via cli\n");
    const listed = await product.cli(["--json", "forward", "fwd-cli"]);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as ForwardJson[];
    expect(rows.map((r) => [r.port, r.host_port, r.address])).toEqual([
      [ECHO_PORT, hostPort, `127.0.0.1:${hostPort}`],
    ]);
    const clash = await product.cli(["forward", "fwd-cli", "7001", "--host-port", String(hostPort)]);
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toMatch(/in use/);
    const bad = await product.cli(["forward", "fwd-cli", "70000"]);
    expect(bad.code).not.toBe(0);
    const closed = await product.cli(["--json", "forward", "fwd-cli", String(ECHO_PORT), "--close"]);
    expect(closed.code, closed.stderr).toBe(0);
    expect((JSON.parse(closed.stdout) as ForwardJson).host_port).toBe(hostPort);
    expect((await product.http("GET", `/sandboxes/${sb.id}/forward`)).json<ForwardJson[]>()).toEqual([]);
  }, 120_000);

  it("refuses bad ports (400) and a host port in use (409); another user's sandbox is 404", async () => {
    const sb = await create("fwd-bad");
    for (const body of [
      { port: 0 },
      { port: 70_000 },
      { port: 80, host_port: -1 },
      { port: 80, host_port: 65_536 },
      {},
      { port: "80" },
    ]) {
      const res = await product.http("POST", `/sandboxes/${sb.id}/forward`, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const first = await product.http("POST", `/sandboxes/${sb.id}/forward`, { body: { port: 81 } });
    expect(first.status).toBe(200);
    const taken = first.json<ForwardJson>().host_port;
    const clash = await product.http("POST", `/sandboxes/${sb.id}/forward`, {
      body: { port: 82, host_port: taken },
    });
    expect(clash.status, clash.text).toBe(409);
    expect(clash.json<{ error: string }>().error).toMatch(/in use/);
    const otherPort = await product.http("POST", `/sandboxes/${sb.id}/forward`, {
      body: { port: 81, host_port: taken === 65_000 ? 65_001 : 65_000 },
    });
    expect(otherPort.status).toBe(409);
    const foreign = await product.http("POST", `/sandboxes/${sb.id}/forward`, {
      body: { port: 83 },
      headers: { authorization: `Bearer ${product.adminKey}` },
    });
    expect(foreign.status).toBe(404);
  }, 60_000);

  it("wakes a cold sandbox on connect, and destroy closes the listener", async () => {
    const sb = await create("fwd-cold");
    await startEcho(sb.id);
    const fwd = (
      await product.http("POST", `/sandboxes/${sb.id}/forward`, { body: { port: ECHO_PORT } })
    ).json<ForwardJson>();
    expect((await product.http("POST", `/sandboxes/${sb.id}/stop`)).status).toBe(200);
    await waitForSandbox(product, sb.id, (s) => s.thermal === "cold", 60_000);

    // The connect alone wakes it (GET never wakes). gVisor's restore interrupts a blocked
    // accept() with EINTR and busybox nc exits on it, so the server is a loop that restarts nc;
    // the echo is checked once that loop has its listener back.
    await dial(fwd.host_port).then((s) => s.destroy());
    await waitForSandbox(product, sb.id, (s) => s.thermal === "hot", 60_000);
    const deadline0 = Date.now() + 20_000;
    for (;;) {
      const back = await echoThrough(fwd.host_port, Buffer.from("woken\n")).catch(() => undefined);
      if (back !== undefined) {
        expect(back.toString()).toBe("woken\n");
        break;
      }
      if (Date.now() > deadline0) throw new Error("no echo through the forward after the wake");
      await sleep(100);
    }

    expect((await product.http("DELETE", `/sandboxes/${sb.id}`)).status).toBe(200);
    // The listener is freed once the vmm reports the destroy: the same host port becomes bindable
    // again (a forward of another sandbox on it stops being 409).
    const next = await create("fwd-next");
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await product.http("POST", `/sandboxes/${next.id}/forward`, {
        body: { port: ECHO_PORT, host_port: fwd.host_port },
      });
      if (res.status === 200) break;
      expect(res.status, res.text).toBe(409);
      if (Date.now() > deadline) throw new Error("the forward's listener outlived the sandbox");
      await sleep(200);
    }
  }, 180_000);
});
