import { statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, type SandboxJson, exec, startProduct } from "../thermal/product-harness.js";
import { type ShareJson, anonymousGet, openShareSocket, refusedUpgrade } from "./share-client.js";

// Share links against the real product: the token is the only credential of the page and its
// socket, and grants nothing else; read-only input is dropped by the gateway; revocation is in
// the store, so it holds across a gateway restart.

describe("share links", () => {
  let product: Product;
  let sandbox: SandboxJson;

  beforeAll(async () => {
    product = await startProduct({ flags: [] });
    const res = await product.http("POST", "/sandboxes", { body: { name: "shared", image: "busybox" } });
    expect(res.status, res.text).toBe(201);
    sandbox = res.json<SandboxJson>();
  }, 180_000);

  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  const share = async (body: Record<string, unknown> = {}): Promise<ShareJson & { token: string }> => {
    const res = await product.http("POST", `/sandboxes/${sandbox.id}/share`, { body });
    expect(res.status, res.text).toBe(201);
    const s = res.json<ShareJson>();
    expect(s.token).toBeDefined();
    return s as ShareJson & { token: string };
  };

  /** Flips one character of the token's signature or its payload. */
  const tamper = (token: string, part: 0 | 1): string => {
    const [body = "", sig = ""] = token.split(".");
    const flip = (s: string) => `${s.slice(0, 5)}${s[5] === "A" ? "B" : "A"}${s.slice(6)}`;
    return part === 0 ? `${flip(body)}.${sig}` : `${body}.${flip(sig)}`;
  };

  it("serves the page for a valid link (strict CSP, no referrer) and refuses tampered ones with 401", async () => {
    const s = await share();
    expect(s.url).toMatch(new RegExp(`/share/${s.token.replace(/[.]/g, "\\.")}$`));
    const page = await anonymousGet(product, `/share/${s.token}`);
    expect(page.status, page.text).toBe(200);
    expect(page.headers["content-type"]).toMatch(/text\/html/);
    expect(page.text).toContain('<script src="/share/assets/share-page.js">');
    const csp = String(page.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    // The signing key: made by the store in its state dir, root-only.
    expect(statSync(join(product.env.stateDir, "share.key")).mode & 0o777).toBe(0o600);
    const js = await anonymousGet(product, "/share/assets/share-page.js");
    expect(js.status).toBe(200);
    expect(js.text).toContain("bhattiTerminal");

    for (const bad of [tamper(s.token, 0), tamper(s.token, 1), "garbage", `${s.token}x`]) {
      const res = await anonymousGet(product, `/share/${bad}`);
      expect(res.status, bad).toBe(401);
      expect(JSON.parse(res.text)).toEqual({ error: "share link is invalid" });
      expect((await refusedUpgrade(product, bad)).status).toBe(401);
    }
  }, 60_000);

  it("bhatti share prints a working link (--json too), lists and revokes", async () => {
    const made = await product.cli(["share", "shared", "--expires", "10m", "--read-only"]);
    expect(made.code, made.stderr).toBe(0);
    const url = made.stdout.trim();
    expect(url).toMatch(/^http:\/\/[^/]+\/share\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const token = url.split("/share/")[1] ?? "";
    expect((await anonymousGet(product, `/share/${token}`)).text).toContain('data-read-only="true"');
    const json = await product.cli(["--json", "share", "shared", "--expires", "1h"]);
    expect(json.code, json.stderr).toBe(0);
    const created = JSON.parse(json.stdout) as ShareJson;
    expect(created.read_only).toBe(false);
    expect(Date.parse(created.expires_at) - Date.now()).toBeGreaterThan(3_500_000);
    const listed = JSON.parse(
      (await product.cli(["--json", "share", "shared", "--list"])).stdout,
    ) as ShareJson[];
    expect(listed.map((s) => s.id)).toContain(created.id);
    const revoked = await product.cli(["--json", "share", "shared", "--revoke"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((JSON.parse(revoked.stdout) as { revoked: string[] }).revoked).toContain(created.id);
    expect((await anonymousGet(product, `/share/${token}`)).status).toBe(401);
    expect((await product.cli(["share", "shared", "--expires", "soon"])).code).not.toBe(0);
  }, 60_000);

  it("the token grants nothing but its page and socket", async () => {
    const s = await share();
    const asBearer = { authorization: `Bearer ${s.token}` };
    for (const path of ["/sandboxes", `/sandboxes/${sandbox.id}`, `/sandboxes/${sandbox.id}/sessions`]) {
      expect((await anonymousGet(product, path, asBearer)).status, path).toBe(401);
    }
    const execRes = await product.http("POST", `/sandboxes/${sandbox.id}/exec`, {
      body: { cmd: ["true"] },
      headers: asBearer,
    });
    expect(execRes.status).toBe(401);
    expect((await anonymousGet(product, `/share/${s.token}/../../sandboxes`)).status).toBe(401);
  }, 60_000);

  it("attaches a read-write viewer to the session; a read-only viewer's keystrokes never reach it", async () => {
    const rw = await share();
    const viewer = await openShareSocket(product, rw.token);
    viewer.ws.send(Buffer.from("echo rw-$((6*7))\n"));
    await viewer.waitFor("rw-42");
    viewer.ws.close();
    await viewer.closed();

    const ro = await share({ read_only: true, session_id: rw.session_id });
    expect(ro.session_id).toBe(rw.session_id);
    const reader = await openShareSocket(product, ro.token);
    // The replayed scrollback shows what the session did...
    await reader.waitFor("rw-42");
    // ...but what the reader types (and resizes) is dropped by the gateway.
    reader.ws.send(Buffer.from("touch /tmp/ro-typed; echo ro-$((2*3))\n"));
    reader.ws.send(JSON.stringify({ type: "resize", rows: 5, cols: 20 }));
    reader.ws.close();
    await reader.closed();

    // A writer afterwards runs after anything the reader's bytes could have queued in the PTY.
    const writer = await openShareSocket(product, rw.token);
    writer.ws.send(Buffer.from("echo after-$((1+1)); stty size\n"));
    await writer.waitFor("after-2");
    expect(writer.output()).not.toContain("ro-6");
    // Not "\n24 80": a browser viewer's terminal may answer the shell's cursor-position query
    // (ESC[6n) in between, and the tty echoes that reply before the command's output.
    await writer.waitFor("24 80");
    writer.ws.close();
    const probe = await exec(product, sandbox.id, [
      "sh",
      "-c",
      "test -e /tmp/ro-typed && echo typed || echo clean",
    ]);
    expect(probe.body.stdout.trim()).toBe("clean");
  }, 90_000);

  it("viewers of one session share it: all see the output live, late joiners get the replay, read-only input is dropped", async () => {
    const rw = await share();
    const ro = await share({ read_only: true, session_id: rw.session_id });
    const a = await openShareSocket(product, rw.token);
    const b = await openShareSocket(product, ro.token, { answerCursorQueries: false });
    const c = await openShareSocket(product, rw.token, { answerCursorQueries: false });
    a.ws.send(Buffer.from("echo both-$((3*3))\n"));
    await Promise.all([a.waitFor("both-9"), b.waitFor("both-9"), c.waitFor("both-9")]);
    b.ws.send(Buffer.from("touch /tmp/ro-shared; echo ro2-$((5*5))\n"));
    c.ws.send(Buffer.from("echo c-$((2+2))\n"));
    await Promise.all([a.waitFor("c-4"), b.waitFor("c-4"), c.waitFor("c-4")]);
    const d = await openShareSocket(product, ro.token, { answerCursorQueries: false });
    await d.waitFor("c-4");
    // Joining took nobody's place.
    for (const v of [a, b, c, d]) expect(v.ws.readyState).toBe(v.ws.OPEN);
    for (const v of [a, b, c, d]) expect(v.output()).not.toContain("ro2-25");
    const probe = await exec(product, sandbox.id, [
      "sh",
      "-c",
      "test -e /tmp/ro-shared && echo typed || echo clean",
    ]);
    expect(probe.body.stdout.trim()).toBe("clean");
    for (const v of [a, b, c, d]) v.ws.close();
    await Promise.all([a, b, c, d].map((v) => v.closed()));
  }, 90_000);

  it("an expired link is 401 (page and socket), and an open viewer is closed at expiry", async () => {
    const s = await share({ expires_sec: 3 });
    const viewer = await openShareSocket(product, s.token);
    const closed = await viewer.closed();
    expect(closed.code).toBe(1008);
    expect(closed.reason).toBe("share expired");
    let res = await anonymousGet(product, `/share/${s.token}`);
    const deadline = Date.now() + 10_000;
    while (res.status === 200 && Date.now() < deadline) {
      await sleep(100);
      res = await anonymousGet(product, `/share/${s.token}`);
    }
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text)).toEqual({ error: "share link has expired" });
    expect((await refusedUpgrade(product, s.token)).status).toBe(401);
    expect(
      (await product.http("POST", `/sandboxes/${sandbox.id}/share`, { body: { expires_sec: 0.5 } })).status,
    ).toBe(400);
  }, 60_000);

  it("destroying the sandbox ends its links (401), and a viewer's socket closes", async () => {
    const res = await product.http("POST", "/sandboxes", { body: { name: "short-lived", image: "busybox" } });
    expect(res.status, res.text).toBe(201);
    const sb = res.json<SandboxJson>();
    const made = await product.http("POST", `/sandboxes/${sb.id}/share`, { body: {} });
    const s = made.json<ShareJson & { token: string }>();
    const viewer = await openShareSocket(product, s.token);
    expect((await product.http("DELETE", `/sandboxes/${sb.id}`)).status).toBe(200);
    expect(await viewer.closed()).toEqual({ code: 1008, reason: "sandbox destroyed" });
    const page = await anonymousGet(product, `/share/${s.token}`);
    expect(page.status).toBe(401);
    expect(JSON.parse(page.text)).toEqual({
      error: "share link is no longer valid: its sandbox was destroyed",
    });
  }, 60_000);

  it("revoke disconnects viewers and holds across a gateway restart; the signing key persists", async () => {
    const kept = await share();
    const one = await share();
    const viewer = await openShareSocket(product, one.token);
    const del = await product.http("DELETE", `/sandboxes/${sandbox.id}/share/${one.id}`);
    expect(del.status, del.text).toBe(200);
    expect(del.json<{ revoked: string[] }>().revoked).toEqual([one.id]);
    expect(await viewer.closed()).toEqual({ code: 1008, reason: "share revoked" });
    const page = await anonymousGet(product, `/share/${one.token}`);
    expect(page.status).toBe(401);
    expect(JSON.parse(page.text)).toEqual({ error: "share link was revoked" });

    const listed = (await product.http("GET", `/sandboxes/${sandbox.id}/share`)).json<ShareJson[]>();
    expect(listed.map((s) => s.id)).toContain(kept.id);
    expect(listed.map((s) => s.id)).not.toContain(one.id);
    expect(listed.every((s) => s.token === undefined)).toBe(true);

    // A fresh gateway process (whole product restart: the store keeps the revocation, the state
    // dir the key), now with a tight per-address limit on share pages.
    await product.stop();
    await product.restart(["--rate-share-per-minute=3"]);
    expect((await anonymousGet(product, `/share/${one.token}`)).status).toBe(401);
    expect((await anonymousGet(product, `/share/${kept.token}`)).status).toBe(200);
    expect((await anonymousGet(product, `/share/${kept.token}`)).status).toBe(200);
    const limited = await anonymousGet(product, `/share/${kept.token}`);
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toBeDefined();

    // Revoke all: every live share of the sandbox.
    const all = await product.http("DELETE", `/sandboxes/${sandbox.id}/share`);
    expect(all.json<{ revoked: string[] }>().revoked).toContain(kept.id);
    expect((await product.http("GET", `/sandboxes/${sandbox.id}/share`)).json<ShareJson[]>()).toEqual([]);
  }, 240_000);
});
