import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, type SandboxJson, startProduct } from "../thermal/product-harness.js";
import { endpointPath, startWebApp } from "./proxy-harness.js";

/**
 * `proxy_tls` without certificate files: the public listener serves HTTPS with a self-signed
 * wildcard for `*.<proxy_zone>` generated into the state dir; preview URLs are https; the app
 * sees X-Forwarded-Proto: https. With a short `proxy_idle_timeout`, a stream that goes quiet is closed.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("the proxy over TLS (product)", () => {
  let product: Product;
  let alias: string;
  let url: string;
  const proxyPort = 40_000 + Math.floor(Math.random() * 20_000);

  beforeAll(async () => {
    product = await startProduct({
      flags: [
        `--proxy-listen=127.0.0.1:${proxyPort}`,
        "--proxy-tls=true",
        "--proxy-zone=bhatti.localhost",
        "--proxy-idle-timeout=1500ms",
      ],
    });
    const res = await product.http("POST", "/sandboxes", { body: { name: "tls", image: "busybox" } });
    expect(res.status, res.text).toBe(201);
    const sb = res.json<SandboxJson>();
    await startWebApp(product, sb.id, [8080]);
    const pub = await product.http("POST", `/sandboxes/${sb.id}/publish`, { body: { port: 8080 } });
    expect(pub.status, pub.text).toBe(201);
    ({ alias, url } = pub.json<{ alias: string; url: string }>());
  }, 240_000);

  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  it("serves the preview over HTTPS with a wildcard certificate that verifies against itself", async () => {
    expect(url).toBe(`https://${alias}.bhatti.localhost:${proxyPort}/`);
    const cert = readFileSync(join(product.env.stateDir, "proxy-tls", "self-signed.crt"));
    const socketPath = await endpointPath(product, proxyPort);
    const host = `${alias}.bhatti.localhost`;
    const res = await new Promise<{ status: number; body: string; san: string }>((resolve, reject) => {
      const req = request(
        {
          socketPath,
          path: "/headers",
          servername: host,
          ca: cert,
          headers: { host: `${host}:${proxyPort}` },
        },
        (r) => {
          // Read before the end: the socket is released from the response then.
          const san = (r.socket as TLSSocket).getPeerCertificate().subjectaltname ?? "";
          const chunks: Buffer[] = [];
          r.on("data", (d: Buffer) => chunks.push(d));
          r.on("end", () =>
            resolve({
              status: r.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              san,
            }),
          );
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(res.status).toBe(200);
    expect(res.san).toContain("DNS:*.bhatti.localhost");
    const seen = JSON.parse(res.body) as { headers: Record<string, string> };
    expect(seen.headers["x-forwarded-proto"]).toBe("https");
    expect(seen.headers["x-forwarded-host"]).toBe(`${host}:${proxyPort}`);
  });

  it("closes a proxied stream that stays idle for proxy_idle_timeout (the app's next event is 10 s away)", async () => {
    const socketPath = await endpointPath(product);
    const host = `${alias}.bhatti.localhost:${product.port}`;
    const outcome = await new Promise<{ first: string; ended: boolean }>((resolve, reject) => {
      const req = httpRequest({ socketPath, path: "/sse", headers: { host }, agent: false }, (res) => {
        let first = "";
        res.once("data", (d: Buffer) => (first = d.toString()));
        // The app never ends this stream: only the idle timeout can close it.
        res.once("close", () => resolve({ first, ended: true }));
        res.on("error", () => undefined);
      });
      req.on("error", (e) => (e.message.includes("socket hang up") ? undefined : reject(e)));
      req.end();
    });
    expect(outcome.first).toBe("id: 1\ndata: tick-1\n\n");
    expect(outcome.ended).toBe(true);
  });
});
