import { createHash } from "node:crypto";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, type SandboxJson, startProduct, waitForSandbox } from "../thermal/product-harness.js";
import { endpointPath, nextMessage, openWebSocket, rawRequest, startWebApp } from "./proxy-harness.js";

const WARM_MS = 2_000;
const COLD_MS = 5_000;
const APP_PORT = 3000;
const PRIVATE_PORT = 3001;
const FLOOD_PORT = 3002;
/** The app also listens on 0.0.0.0 here: the proxy reaches it at the sandbox's address. */
const WIDE_PORT = 3003;

interface Published {
  id: string;
  sandbox_id: string;
  port: number;
  alias: string;
  url: string;
  private: boolean;
  created_at: string;
}

/**
 * Published ports and the proxy through the whole product (`bhatti serve`, gvisor, a real Node web
 * app inside the sandbox, on 127.0.0.1, so reached through the agent's forward port, and on
 * 0.0.0.0 on WIDE_PORT, reached at the sandbox's address): domain mode (Host
 * header), path mode (the separate `proxy_listen` listener) and the owner's authenticated proxy;
 * streaming, WebSockets, byte-exact large bodies, wake from cold, activity, limits and refusals.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("publish and the proxy (product)", () => {
  let product: Product;
  let api: string;
  let pub: string;
  let otherKey: string;
  let web: SandboxJson;
  let published: Published;
  const proxyPort = 40_000 + Math.floor(Math.random() * 20_000);
  const open: WebSocket[] = [];

  const create = async (name: string) => {
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox" } });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxJson>();
  };
  const hostOf = (alias: string) => `${alias}.localhost:${product.port}`;

  beforeAll(async () => {
    product = await startProduct({
      flags: [
        `--thermal-warm-after=${WARM_MS}ms`,
        `--thermal-cold-after=${COLD_MS}ms`,
        "--thermal-tick=200ms",
        `--proxy-listen=127.0.0.1:${proxyPort}`,
        "--proxy-rate-alias-burst=150",
        "--proxy-rate-alias-per-minute=60",
      ],
    });
    api = await endpointPath(product);
    pub = await endpointPath(product, proxyPort);
    const other = await product.http("POST", "/users", {
      body: { name: "proxy-other", limits: { creates_per_minute: 100, max_sandboxes: 5 } },
      headers: { authorization: `Bearer ${product.adminKey}` },
    });
    expect(other.status, other.text).toBe(201);
    otherKey = other.json<{ api_key: string }>().api_key;
    web = await create("web");
    await startWebApp(product, web.id, [APP_PORT, PRIVATE_PORT, FLOOD_PORT, `0.0.0.0:${WIDE_PORT}`]);
    const cli = await product.cli(["publish", "web", "-p", String(APP_PORT), "--json"]);
    expect(cli.code, cli.stderr).toBe(0);
    published = JSON.parse(cli.stdout) as Published;
  }, 240_000);

  afterAll(async () => {
    for (const ws of open) ws.terminate();
    await product?.dispose();
  }, 180_000);

  it("publish returns the rule with a domain-mode URL and an auto alias <name>-<6 hex>; list shows it", async () => {
    expect(published.alias).toMatch(/^web-[0-9a-f]{6}$/);
    // With proxy_listen set, preview URLs name its port (both listeners serve domain mode).
    expect(published.url).toBe(`http://${published.alias}.localhost:${proxyPort}/`);
    expect(published).toMatchObject({ sandbox_id: web.id, port: APP_PORT, private: false });
    const list = await product.http("GET", `/sandboxes/${web.id}/publish`);
    expect(list.status).toBe(200);
    expect(list.json<Published[]>().map((p) => p.alias)).toEqual([published.alias]);
    // --json prints exactly the REST body.
    const cliList = await product.cli(["publish", "web", "--json"]);
    expect(cliList.code, cliList.stderr).toBe(0);
    expect(JSON.parse(cliList.stdout)).toEqual(list.json());
    expect(list.json<Published[]>()[0]).toEqual(published);
    const human = await product.cli(["publish", "web"]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(published.url);
  });

  it("domain mode: Host <alias>.localhost reaches the app with X-Forwarded-* set and hop-by-hop headers dropped", async () => {
    const page = await rawRequest(api, "GET", "/", { headers: { host: hostOf(published.alias) } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<div id="app">');
    expect(page.headers["x-bhatti-version"]).toBeUndefined();

    const res = await rawRequest(api, "GET", "/headers?q=1", {
      headers: {
        host: hostOf(published.alias),
        "keep-alive": "timeout=5",
        "x-custom": "kept",
        te: "trailers",
      },
    });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.text) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe("/headers?q=1");
    expect(seen.headers["host"]).toBe(`localhost:${APP_PORT}`);
    expect(seen.headers["x-forwarded-host"]).toBe(hostOf(published.alias));
    expect(seen.headers["x-forwarded-proto"]).toBe("http");
    expect(seen.headers["x-forwarded-for"]).toBeTruthy();
    expect(seen.headers["x-custom"]).toBe("kept");
    expect(seen.headers["keep-alive"]).toBeUndefined();
    expect(seen.headers["te"]).toBeUndefined();
  });

  it("reuses its connection to the app across requests (keep-alive forward channels)", async () => {
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const res = await rawRequest(api, "GET", "/headers", { headers: { host: hostOf(published.alias) } });
      expect(res.status).toBe(200);
      ports.add((JSON.parse(res.text) as { remotePort: number }).remotePort);
    }
    expect(ports.size).toBe(1);
  });

  it("an app on 127.0.0.1 is reached through the agent, one on 0.0.0.0 directly at the sandbox's address", async () => {
    type Seen = { remoteAddress: string; remotePort: number; headers: Record<string, string> };
    // 127.0.0.1 only: the direct dial is refused, so the agent's forward port relays (its peer is loopback).
    for (let i = 0; i < 2; i++) {
      const local = await rawRequest(api, "GET", "/headers", { headers: { host: hostOf(published.alias) } });
      expect(local.status, local.text).toBe(200);
      expect((JSON.parse(local.text) as Seen).remoteAddress).toBe("127.0.0.1");
    }
    // 0.0.0.0: the gateway dials the sandbox's address; the app's peer is the host side of the link.
    const wideRule = await product.http("POST", `/sandboxes/${web.id}/publish`, {
      body: { port: WIDE_PORT },
    });
    expect(wideRule.status, wideRule.text).toBe(201);
    const wideHost = hostOf(wideRule.json<Published>().alias);
    const peers = new Set<string>();
    const ports = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const wide = await rawRequest(api, "GET", "/headers", { headers: { host: wideHost } });
      expect(wide.status, wide.text).toBe(200);
      const seen = JSON.parse(wide.text) as Seen;
      expect(seen.headers["x-forwarded-host"]).toBe(wideHost);
      expect(seen.headers["host"]).toBe(`localhost:${WIDE_PORT}`);
      peers.add(seen.remoteAddress.replace(/^::ffff:/, ""));
      ports.add(seen.remotePort);
    }
    expect(peers.size).toBe(1);
    const [peer] = [...peers];
    expect(peer).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(peer).not.toBe("127.0.0.1");
    expect(peer).not.toBe((web as SandboxJson & { ip?: string }).ip);
    // Direct connections are pooled too.
    expect(ports.size).toBe(1);
    // The owner's proxy and WebSockets take the same path.
    const owner = await product.http("GET", `/sandboxes/${web.id}/proxy/${WIDE_PORT}/headers`);
    expect(owner.status).toBe(200);
    expect(owner.json<Seen>().remoteAddress.replace(/^::ffff:/, "")).toBe(peer);
    const ws = await openWebSocket(api, "/ws", { host: wideHost });
    open.push(ws);
    ws.send("direct");
    expect(await nextMessage(ws)).toBe("echo:direct");
    ws.close();
  });

  it("path mode on proxy_listen: /<alias>/ strips the prefix, /<alias> redirects, the API is not served there", async () => {
    const redirect = await rawRequest(pub, "GET", `/${published.alias}?x=1`);
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`/${published.alias}/?x=1`);
    const res = await rawRequest(pub, "GET", `/${published.alias}/headers`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).url).toBe("/headers");
    // Domain mode works on the public listener too.
    const byHost = await rawRequest(pub, "GET", "/headers", { headers: { host: hostOf(published.alias) } });
    expect(byHost.status).toBe(200);
    const noApi = await rawRequest(pub, "GET", "/sandboxes", {
      headers: { authorization: `Bearer ${product.userKey}` },
    });
    expect(noApi.status).toBe(404);
  });

  it("the owner's authenticated proxy reaches any port, without passing the API key on", async () => {
    const res = await product.http("GET", `/sandboxes/${web.id}/proxy/${APP_PORT}/headers`);
    expect(res.status).toBe(200);
    expect(res.json<{ headers: Record<string, string> }>().headers["authorization"]).toBeUndefined();
    const byName = await product.http("GET", `/sandboxes/web/proxy/${PRIVATE_PORT}/headers`);
    expect(byName.status).toBe(200);
    expect(byName.json<{ port: number }>().port).toBe(PRIVATE_PORT);
    const redirect = await product.http("GET", `/sandboxes/${web.id}/proxy/${APP_PORT}`);
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`/sandboxes/${web.id}/proxy/${APP_PORT}/`);
    const noKey = await rawRequest(api, "GET", `/sandboxes/${web.id}/proxy/${APP_PORT}/headers`);
    expect(noKey.status).toBe(401);
  });

  it("another user's sandbox is 404 through the proxy and for publish; bad ports are 400", async () => {
    const other = { authorization: `Bearer ${otherKey}` };
    const proxied = await product.http("GET", `/sandboxes/${web.id}/proxy/${APP_PORT}/headers`, {
      headers: other,
    });
    expect(proxied.status).toBe(404);
    const pubOther = await product.http("POST", `/sandboxes/${web.id}/publish`, {
      body: { port: 4000 },
      headers: other,
    });
    expect(pubOther.status).toBe(404);
    for (const port of ["0", "70000", "1024", "1025", "abc"]) {
      const res = await product.http("GET", `/sandboxes/${web.id}/proxy/${port}/`);
      expect(res.status, `proxy port ${port}`).toBe(400);
    }
  });

  it("answers 502 with a clear body when nothing listens on the port", async () => {
    const res = await product.http("GET", `/sandboxes/${web.id}/proxy/3999/`);
    expect(res.status).toBe(502);
    expect(res.json<{ error: string }>().error).toMatch(/nothing answered on port 3999/);
  });

  it("refuses bad publish input: ports, alias pattern, reserved names (400) and conflicts (409)", async () => {
    const post = (body: unknown) => product.http("POST", `/sandboxes/${web.id}/publish`, { body });
    for (const port of [0, 65536, 1024, 1025, 3.5, "80"]) {
      const res = await post({ port });
      expect(res.status, `port ${JSON.stringify(port)}: ${res.text}`).toBe(400);
    }
    for (const alias of ["Bad_Alias", "-dash", "a".repeat(64), "www", "api", "admin"]) {
      const res = await post({ port: 4100, alias });
      expect(res.status, `alias ${alias}: ${res.text}`).toBe(400);
    }
    expect((await post({ port: 4100, alias: published.alias })).status).toBe(409);
    expect((await post({ port: APP_PORT })).status).toBe(409);
    const cli = await product.cli(["publish", "web", "-p", "70000"]);
    expect(cli.code).toBe(1);
  });

  it("streams server-sent events (the first event arrives while the response is still open)", async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = request(
        { socketPath: api, path: "/sse", headers: { host: hostOf(published.alias) }, agent: false },
        (res) => {
          expect(res.headers["content-type"]).toBe("text/event-stream");
          res.once("data", (d: Buffer) => {
            resolve(d.toString());
            req.destroy();
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(first).toBe("id: 1\ndata: tick-1\n\n");
  });

  it("relays WebSockets in domain mode, path mode and through the owner proxy", async () => {
    const viaHost = await openWebSocket(api, "/ws", { host: hostOf(published.alias) });
    open.push(viaHost);
    viaHost.send("one");
    expect(await nextMessage(viaHost)).toBe("echo:one");
    const viaPath = await openWebSocket(pub, `/${published.alias}/ws`);
    open.push(viaPath);
    viaPath.send("two");
    expect(await nextMessage(viaPath)).toBe("echo:two");
    const viaOwner = await openWebSocket(api, `/sandboxes/${web.id}/proxy/${APP_PORT}/ws`, {
      authorization: `Bearer ${product.userKey}`,
    });
    open.push(viaOwner);
    viaOwner.send("three");
    expect(await nextMessage(viaOwner)).toBe("echo:three");
    for (const ws of [viaHost, viaPath, viaOwner]) ws.close();
  });

  it("moves 6 MiB down and 7 MiB up byte-exact (sha256), streams a chunked body, and caps bodies at 50 MB (413)", async () => {
    const down = await rawRequest(api, "GET", "/blob", { headers: { host: hostOf(published.alias) } });
    expect(down.status).toBe(200);
    expect(down.body.byteLength).toBe(6 * 1024 * 1024 + 17);
    const expected = await rawRequest(pub, "GET", `/${published.alias}/blob.sha256`);
    expect(createHash("sha256").update(down.body).digest("hex")).toBe(expected.text);

    const body = Buffer.alloc(7 * 1024 * 1024 + 3);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >> 11)) & 255;
    const up = await rawRequest(pub, "POST", `/${published.alias}/upload`, { body });
    expect(up.status).toBe(200);
    expect(JSON.parse(up.text)).toEqual({
      bytes: body.length,
      sha256: createHash("sha256").update(body).digest("hex"),
    });

    // A body without a length (chunked) streams through too.
    const chunked = await new Promise<string>((resolve, reject) => {
      const req = request(
        { socketPath: pub, method: "POST", path: `/${published.alias}/upload`, agent: false },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 16; i++) req.write(body.subarray(i * 65_536, (i + 1) * 65_536));
      req.end();
    });
    expect(JSON.parse(chunked)).toEqual({
      bytes: 16 * 65_536,
      sha256: createHash("sha256")
        .update(body.subarray(0, 16 * 65_536))
        .digest("hex"),
    });

    const tooBig = await rawRequest(api, "POST", "/upload", {
      headers: { host: hostOf(published.alias), "content-length": String(50 * 1024 * 1024 + 1) },
    }).catch((e: Error) => ({ status: -1, text: e.message }));
    expect(tooBig.status).toBe(413);
  });

  it("--private needs the owner's key: none is 401, another user's is 404, the owner's reaches the app", async () => {
    const cli = await product.cli([
      "publish",
      "web",
      "-p",
      String(PRIVATE_PORT),
      "--alias",
      "web-private",
      "--private",
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout.trim()).toBe(`http://web-private.localhost:${proxyPort}/`);
    const host = { host: hostOf("web-private") };
    expect((await rawRequest(api, "GET", "/headers", { headers: host })).status).toBe(401);
    expect(
      (
        await rawRequest(api, "GET", "/headers", {
          headers: { ...host, authorization: `Bearer ${otherKey}` },
        })
      ).status,
    ).toBe(404);
    const owner = await rawRequest(api, "GET", "/headers", {
      headers: { ...host, authorization: `Bearer ${product.userKey}` },
    });
    expect(owner.status).toBe(200);
    expect(JSON.parse(owner.text).headers.authorization).toBeUndefined();
    expect((await rawRequest(pub, "GET", "/web-private/headers")).status).toBe(401);
  });

  it("a flood on one alias gets 429 with Retry-After, unknown aliases and hosts are 404", async () => {
    const flood = await product.http("POST", `/sandboxes/${web.id}/publish`, {
      body: { port: FLOOD_PORT, alias: "web-flood" },
    });
    expect(flood.status).toBe(201);
    const statuses = await Promise.all(
      Array.from({ length: 200 }, () =>
        rawRequest(pub, "HEAD", "/web-flood/headers").then((r) => ({
          status: r.status,
          retry: r.headers["retry-after"],
        })),
      ),
    );
    const limited = statuses.filter((s) => s.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]?.retry).toBeDefined();
    expect(statuses.filter((s) => s.status === 200).length).toBeGreaterThan(0);
    expect((await rawRequest(api, "GET", "/", { headers: { host: hostOf("no-such-alias") } })).status).toBe(
      404,
    );
    expect(
      (await rawRequest(api, "GET", "/", { headers: { host: `a.b.localhost:${product.port}` } })).status,
    ).toBe(404);
    expect((await rawRequest(pub, "GET", "/no-such-alias/")).status).toBe(404);
    // A reserved name under the zone is the API's on its own listener (the API can live at api.<zone>).
    const apiByName = await rawRequest(api, "GET", "/sandboxes", {
      headers: { host: hostOf("api"), authorization: `Bearer ${product.userKey}` },
    });
    expect(apiByName.status).toBe(200);
  });

  it("drops its pooled connections into a sandbox when it pauses; the next request wakes it on a new one", async () => {
    const pausing = await create("pausing");
    await startWebApp(product, pausing.id, [`0.0.0.0:${APP_PORT}`, PRIVATE_PORT]);
    for (const port of [APP_PORT, PRIVATE_PORT]) {
      const rule = await product.http("POST", `/sandboxes/${pausing.id}/publish`, { body: { port } });
      expect(rule.status, rule.text).toBe(201);
      const host = { host: hostOf(rule.json<Published>().alias) };
      const remotePort = async () => {
        const res = await rawRequest(api, "GET", "/headers", { headers: host });
        expect(res.status, res.text).toBe(200);
        return (JSON.parse(res.text) as { remotePort: number }).remotePort;
      };
      const before = await remotePort();
      expect(await remotePort()).toBe(before);
      // Paused by the thermal policy (well within the app's 5 s keep-alive): the pooled
      // connection (direct on APP_PORT, through the agent on PRIVATE_PORT) is not reused.
      await waitForSandbox(product, pausing.id, (s) => s.thermal === "warm", 30_000);
      expect(await remotePort()).not.toBe(before);
      expect((await product.http("GET", `/sandboxes/${pausing.id}`)).json<SandboxJson>().thermal).toBe("hot");
    }
    expect((await product.http("DELETE", `/sandboxes/${pausing.id}`)).status).toBe(200);
  });

  it("wakes a cold sandbox on a request, and an open proxied WebSocket keeps a sandbox hot", async () => {
    const sleepy = await create("sleepy");
    const pinned = await create("pinned");
    await startWebApp(product, sleepy.id, [APP_PORT]);
    await startWebApp(product, pinned.id, [APP_PORT]);
    const pinnedRule = (
      await product.http("POST", `/sandboxes/${pinned.id}/publish`, { body: { port: APP_PORT } })
    ).json<Published>();
    const ws = await openWebSocket(api, "/ws", { host: hostOf(pinnedRule.alias) });
    open.push(ws);
    ws.send("hold");
    expect(await nextMessage(ws)).toBe("echo:hold");

    const sleepyRule = (
      await product.http("POST", `/sandboxes/${sleepy.id}/publish`, { body: { port: APP_PORT } })
    ).json<Published>();
    // Polling GET /sandboxes/:id is not activity: sleepy cools on its own.
    await waitForSandbox(product, sleepy.id, (s) => s.thermal === "cold", 60_000);
    // Sleepy went warm then cold while the WebSocket was open: the pinned one never left hot.
    const pinnedNow = (await product.http("GET", `/sandboxes/${pinned.id}`)).json<SandboxJson>();
    expect(pinnedNow.thermal).toBe("hot");
    ws.send("still");
    expect(await nextMessage(ws)).toBe("echo:still");

    const woken = await rawRequest(api, "GET", "/headers", { headers: { host: hostOf(sleepyRule.alias) } });
    expect(woken.status, woken.text).toBe(200);
    expect((await product.http("GET", `/sandboxes/${sleepy.id}`)).json<SandboxJson>().thermal).toBe("hot");
    ws.close();
  });

  it("unpublish and destroy make the URL 404 at once", async () => {
    const host = { host: hostOf(published.alias) };
    expect((await rawRequest(api, "GET", "/headers", { headers: host })).status).toBe(200);
    const un = await product.cli(["unpublish", "web", "-p", String(APP_PORT), "--json"]);
    expect(un.code, un.stderr).toBe(0);
    expect(JSON.parse(un.stdout)).toMatchObject({ port: APP_PORT, status: "unpublished" });
    expect((await rawRequest(api, "GET", "/headers", { headers: host })).status).toBe(404);
    expect((await rawRequest(pub, "GET", `/${published.alias}/headers`)).status).toBe(404);
    expect((await product.http("DELETE", `/sandboxes/${web.id}/publish/${APP_PORT}`)).status).toBe(404);

    const again = await product.http("POST", `/sandboxes/${web.id}/publish`, {
      body: { port: APP_PORT, alias: "web-again" },
    });
    expect(again.status).toBe(201);
    const host2 = { host: hostOf("web-again") };
    expect((await rawRequest(api, "GET", "/headers", { headers: host2 })).status).toBe(200);
    expect((await product.http("DELETE", `/sandboxes/${web.id}`)).status).toBe(200);
    expect((await rawRequest(api, "GET", "/headers", { headers: host2 })).status).toBe(404);
  });
});
