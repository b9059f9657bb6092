import { describe, expect, it } from "vitest";
import { stripHopByHop } from "./hop-by-hop.js";
import { aliasOfHost, aliasOfPath, ownerProxyPath } from "./preview-host.js";
import { publishedUrl } from "./published-url.js";

describe("preview routing (pure parts)", () => {
  it("maps Host headers under the zone to one alias label; deeper or foreign names are not aliases", () => {
    expect(aliasOfHost("Dev-abc123.localhost:8080", "localhost")).toBe("dev-abc123");
    expect(aliasOfHost("dev.preview.example.com.", "preview.example.com")).toBe("dev");
    expect(aliasOfHost("a.b.localhost", "localhost")).toBe("");
    expect(aliasOfHost("-x.localhost", "localhost")).toBe("");
    expect(aliasOfHost("localhost:8080", "localhost")).toBeUndefined();
    expect(aliasOfHost("127.0.0.1:8080", "localhost")).toBeUndefined();
    expect(aliasOfHost("evil-localhost", "localhost")).toBeUndefined();
    expect(aliasOfHost(undefined, "localhost")).toBeUndefined();
    expect(aliasOfHost("[::1]:8080", "localhost")).toBeUndefined();
  });

  it("path mode strips /<alias>, keeps the query, and asks for a redirect without the slash", () => {
    expect(aliasOfPath("/shop/a/b?x=1")).toEqual({ alias: "shop", path: "/a/b?x=1", redirect: false });
    expect(aliasOfPath("/shop/")).toEqual({ alias: "shop", path: "/", redirect: false });
    expect(aliasOfPath("/shop?x=1")).toEqual({ alias: "shop", path: "/shop/?x=1", redirect: true });
    expect(aliasOfPath("/")).toBeUndefined();
    expect(aliasOfPath("/Bad_Alias/")).toBeUndefined();
  });

  it("parses the owner proxy path without decoding (no throw on bad escapes)", () => {
    expect(ownerProxyPath("/sandboxes/dev/proxy/3000/api?x=1")).toEqual({
      ref: "dev",
      port: "3000",
      path: "/api?x=1",
      redirect: false,
    });
    expect(ownerProxyPath("/sandboxes/%E0%A4%A/proxy/3000")).toEqual({
      ref: "%E0%A4%A",
      port: "3000",
      path: "/sandboxes/%E0%A4%A/proxy/3000/",
      redirect: true,
    });
    expect(ownerProxyPath("/sandboxes/dev/files")).toBeUndefined();
  });

  it("drops hop-by-hop request headers, keeping Upgrade/Connection only for a WebSocket handshake", () => {
    const headers = {
      connection: "keep-alive, X-Secret-Hop",
      "x-secret-hop": "1",
      "keep-alive": "timeout=5",
      te: "trailers",
      "proxy-authorization": "Basic x",
      upgrade: "h2c",
      "x-kept": "yes",
    };
    stripHopByHop(headers, false);
    expect(headers).toEqual({ "x-kept": "yes" });
    const ws = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" };
    stripHopByHop(ws, true);
    expect(ws).toEqual({ connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" });
  });

  it("builds preview URLs for both modes and TLS", () => {
    const base = {
      listen: "127.0.0.1:8080",
      proxy_listen: "",
      proxy_zone: "localhost",
      proxy_mode: "domain" as const,
      proxy_public_host: "",
      proxy_tls: false,
    };
    expect(publishedUrl(base, "dev-1")).toBe("http://dev-1.localhost:8080/");
    expect(
      publishedUrl(
        { ...base, proxy_listen: "0.0.0.0:443", proxy_tls: true, proxy_zone: "p.example.com" },
        "a",
      ),
    ).toBe("https://a.p.example.com/");
    expect(publishedUrl({ ...base, proxy_mode: "path", proxy_listen: "0.0.0.0:9000" }, "a")).toBe(
      "http://0.0.0.0:9000/a/",
    );
    expect(publishedUrl({ ...base, proxy_mode: "path", proxy_public_host: "box.example.com" }, "a")).toBe(
      "http://box.example.com/a/",
    );
  });
});
