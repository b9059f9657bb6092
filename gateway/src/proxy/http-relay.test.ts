import { createHash, randomBytes } from "node:crypto";
import * as http from "node:http";
import { type AddressInfo, type Socket, connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type RelayTarget, relayHttp } from "./http-relay.js";

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  bodySha: string;
}

const listen = (server: http.Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );

const close = (server: http.Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** A pool agent that dials 127.0.0.1:port, whatever host the request names (like the product's). */
function loopbackAgent(port: number): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  (agent as unknown as { createConnection: () => Socket }).createConnection = () =>
    connect({ host: "127.0.0.1", port, noDelay: true });
  return agent;
}

/** Sends a raw HTTP/1.1 request and returns the raw response text (until the server closes). */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let text = "";
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
    });
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
    socket.write(request);
  });
}

/**
 * relayHttp with real sockets: a loopback "app" that reports what it received, and a front server
 * that relays every request to it (as the proxy engine does, minus the wake and the routing).
 */
describe("relayHttp", () => {
  const servers: http.Server[] = [];
  const agents: http.Agent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) a.destroy();
    await Promise.all(servers.splice(0).map(close));
  });

  const setup = async (
    app: http.RequestListener,
    target: Partial<RelayTarget> = {},
    onError: (err: Error, outgoing: http.ClientRequest) => void = () => {},
  ) => {
    const appServer = http.createServer(app);
    servers.push(appServer);
    const appPort = await listen(appServer);
    const agent = loopbackAgent(appPort);
    agents.push(agent);
    const front = http.createServer((req, res) =>
      relayHttp(req, res, { port: 3000, path: req.url ?? "/", stripAuthorization: false, ...target }, agent, {
        idleTimeoutMs: 60_000,
        onError: (err, outgoing) => {
          onError(err, outgoing);
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(`relay failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
        },
      }),
    );
    servers.push(front);
    return { frontPort: await listen(front), appPort };
  };

  const reportingApp: http.RequestListener = (req, res) => {
    const hash = createHash("sha256");
    req.on("data", (d: Buffer) => hash.update(d));
    req.on("end", () => {
      const seen: Seen = {
        method: req.method ?? "",
        url: req.url ?? "",
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        bodySha: hash.digest("hex"),
      };
      const body = JSON.stringify(seen);
      res.writeHead(200, {
        "content-type": "application/json",
        "x-app": "yes",
        connection: "keep-alive, x-app-private",
        "x-app-private": "hop",
        "keep-alive": "timeout=5",
      });
      res.end(body);
    });
  };

  it("forwards headers as the app should see them: Host, X-Forwarded-* appended, hop-by-hop dropped", async () => {
    const { frontPort } = await setup(reportingApp, { path: "/inner?q=1" });
    const raw = await rawExchange(
      frontPort,
      [
        "GET /outer HTTP/1.1",
        "Host: web-abc123.localhost:8080",
        "X-Custom: kept",
        "X-Custom: twice",
        "X-Forwarded-For: 10.9.9.9",
        "Keep-Alive: timeout=9",
        "TE: trailers",
        "Proxy-Authorization: Basic eA==",
        "Connection: close, x-drop-me",
        "X-Drop-Me: 1",
        "Authorization: Bearer app-token",
        "",
        "",
      ].join("\r\n"),
    );
    const [head, body] = raw.split("\r\n\r\n", 2) as [string, string];
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    // The app's own hop-by-hop headers stay on its side; its end-to-end ones reach the caller.
    expect(head).toMatch(/\r\nx-app: yes/i);
    expect(head).not.toMatch(/x-app-private/i);
    expect(head).not.toMatch(/keep-alive: timeout=5/i);
    const seen = JSON.parse(body.replace(/^[0-9a-f]+\r\n/, "").split("\r\n")[0] ?? body) as Seen;
    expect(seen.url).toBe("/inner?q=1");
    expect(seen.headers.host).toBe("localhost:3000");
    expect(seen.headers["x-forwarded-host"]).toBe("web-abc123.localhost:8080");
    expect(seen.headers["x-forwarded-for"]).toBe("10.9.9.9,127.0.0.1");
    expect(seen.headers["x-forwarded-port"]).toBe("8080");
    expect(seen.headers["x-forwarded-proto"]).toBe("http");
    expect(seen.headers["x-custom"]).toBe("kept, twice");
    // Without stripAuthorization the app's own credentials pass.
    expect(seen.headers.authorization).toBe("Bearer app-token");
    for (const dropped of ["keep-alive", "te", "proxy-authorization", "x-drop-me"])
      expect(seen.headers[dropped], dropped).toBeUndefined();
    // The caller asked for close: this server honours it (rawExchange resolved on its close).
  });

  it("strips Authorization when the target says so (the owner's API key)", async () => {
    const { frontPort } = await setup(reportingApp, { stripAuthorization: true });
    const res = await fetch(`http://127.0.0.1:${frontPort}/x`, {
      headers: { authorization: "Bearer owner-key", "x-other": "1" },
    });
    const seen = (await res.json()) as Seen;
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["x-other"]).toBe("1");
  });

  it("moves a 3 MiB upload and a chunked upload byte-exact, and reuses one connection to the app", async () => {
    const { frontPort } = await setup(reportingApp);
    const body = randomBytes(3 * 1024 * 1024);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const post = (chunks: Buffer[], length: boolean) =>
      new Promise<Seen>((resolve, reject) => {
        const req = http.request(
          {
            host: "127.0.0.1",
            port: frontPort,
            method: "POST",
            path: "/up",
            agent,
            headers: length ? { "content-length": String(body.byteLength) } : {},
          },
          (res) => {
            let text = "";
            res.on("data", (d: Buffer) => {
              text += d.toString();
            });
            res.on("end", () => resolve(JSON.parse(text) as Seen));
          },
        );
        req.on("error", reject);
        for (const c of chunks) req.write(c);
        req.end();
      });
    const want = createHash("sha256").update(body).digest("hex");
    const fixed = await post([body], true);
    expect(fixed.bodySha).toBe(want);
    expect(fixed.headers["content-length"]).toBe(String(body.byteLength));
    const chunked = await post([body.subarray(0, 1000), body.subarray(1000)], false);
    expect(chunked.bodySha).toBe(want);
    expect(chunked.headers["transfer-encoding"]).toBe("chunked");
  });

  it("streams the response: the first event reaches the caller while the app's response is still open", async () => {
    let finish: (() => void) | undefined;
    const { frontPort } = await setup((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: first\n\n");
      finish = () => res.end("data: last\n\n");
    });
    const events: string[] = [];
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: frontPort, path: "/sse" }, (res) => {
          res.on("data", (d: Buffer) => {
            events.push(d.toString());
            // Only after the first event arrived does the app end its response.
            if (events.length === 1) finish?.();
          });
          res.on("end", () => resolve());
        })
        .on("error", reject);
    });
    expect(events.join("")).toBe("data: first\n\ndata: last\n\n");
    expect(events[0]).toBe("data: first\n\n");
  });

  it("reports a refused connection through onError (the engine answers 502) and a reset mid-response as a cut", async () => {
    const errors: string[] = [];
    const { frontPort, appPort } = await setup(
      (req, res) => {
        if (req.url === "/cut") {
          res.writeHead(200, { "content-length": "100" });
          res.write("partial");
          setImmediate(() => req.socket.destroy());
          return;
        }
        res.end("ok");
      },
      {},
      (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message),
    );
    // Mid-response: the caller's response is cut (not turned into a 502 after a 200).
    const cut = await rawExchange(frontPort, "GET /cut HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(cut).toMatch(/^HTTP\/1\.1 200 /);
    expect(cut).toContain("partial");
    expect(cut.length).toBeLessThan(cut.indexOf("partial") + 100);
    expect(errors).toEqual([]);
    // Nothing listens any more: onError, then the engine's 502.
    await close(servers[0] as http.Server);
    const refused = await fetch(`http://127.0.0.1:${frontPort}/x`);
    expect(refused.status).toBe(502);
    expect(await refused.text()).toBe("relay failed: ECONNREFUSED");
    expect(errors).toEqual(["ECONNREFUSED"]);
    expect(appPort).toBeGreaterThan(0);
  });
});
