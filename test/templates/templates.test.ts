// Fast create from per-image template checkpoints against the real product (`bhatti serve`,
// gVisor, the busybox image): the vmm builds the template in the background, a create restores
// it into the new sandbox and claims it (own token, env, hostname, address); sandboxes from one
// template share nothing; a corrupt or stale template falls back to a normal boot and is
// rebuilt; a restarted vmm keeps using its templates.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgentError, createAgentClient } from "@bhatti/agent-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, type SandboxJson, startProduct } from "../thermal/product-harness.js";
import { sh } from "../snapshots/snapshot-helpers.js";
import {
  createPathOf,
  engineTokenOf,
  templatesOf,
  waitForProcess,
  waitForTemplate,
} from "./template-helpers.js";

interface SandboxWithIp extends SandboxJson {
  ip: string;
}

describe("create from a template checkpoint (real product)", () => {
  let product: Product;

  beforeAll(async () => {
    product = await startProduct({
      flags: [
        "--thermal-warm-after=30m",
        "--thermal-cold-after=60m",
        "--create-template-images=busybox",
        "--create-pool-size=0",
      ],
    });
    await waitForTemplate(product, "busybox");
  }, 300_000);

  afterAll(async () => {
    await product?.dispose();
  }, 240_000);

  const create = async (name: string, body: Record<string, unknown> = {}, asAdmin = false) => {
    const res = await product.http("POST", "/sandboxes", {
      body: { name, ...body },
      ...(asAdmin ? { headers: { authorization: `Bearer ${product.adminKey}` } } : {}),
    });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxWithIp>();
  };
  const destroy = async (id: string, asAdmin = false) => {
    const res = await product.http("DELETE", `/sandboxes/${id}`, {
      ...(asAdmin ? { headers: { authorization: `Bearer ${product.adminKey}` } } : {}),
    });
    expect(res.status, res.text).toBe(200);
  };
  const agentOf = async (ip: string, token: string) =>
    createAgentClient({
      control: await product.env.options.dialer.endpoint(ip, 1024),
      forward: await product.env.options.dialer.endpoint(ip, 1025),
      token,
      pool: false,
    });

  it("a create restores the template: the user's env, files, hostname, address, clock and a fresh token", {
    timeout: 180_000,
  }, async () => {
    const tpl = templatesOf(product, "busybox")[0]!;
    const sb = await create("fast-one", {
      env: { GREETING: "hello-from-env" },
      files: [
        { guest_path: "/workspace/given.txt", content: Buffer.from("given-at-create").toString("base64") },
      ],
    });
    expect(await createPathOf(product, sb.id)).toBe("template");
    const out = await sh(
      product,
      sb.id,
      'echo "$GREETING"; cat /workspace/given.txt; echo; hostname; grep -c "$(hostname)" /etc/hosts; ip addr; date +%s',
    );
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe("hello-from-env");
    expect(lines[1]).toBe("given-at-create");
    expect(lines[2]).toBe("fast-one");
    expect(Number(lines[3])).toBeGreaterThanOrEqual(1);
    expect(out).toContain(`inet ${sb.ip}/`);
    const guestNow = Number(lines.at(-1));
    // gVisor's restore takes the host's wall clock; a template checkpointed minutes ago must not lag.
    expect(Math.abs(guestNow - Date.now() / 1000)).toBeLessThan(30);
    expect(out).not.toContain(tpl.manifest.token);

    // The template's token is refused by the claimed agent; the sandbox's own token works.
    const stale = await agentOf(sb.ip, tpl.manifest.token);
    try {
      await expect(stale.exec(["true"])).rejects.toBeInstanceOf(AgentError);
    } finally {
      stale.close();
    }
    const token = engineTokenOf(product, sb.id);
    expect(token).not.toBe(tpl.manifest.token);
    const own = await agentOf(sb.ip, token);
    try {
      expect((await own.exec(["sh", "-c", "echo ok"])).stdout.toString()).toBe("ok\n");
    } finally {
      own.close();
    }
    await destroy(sb.id);
  });

  it("a claim is accepted once: a second CLAIM_REQ, even with the sandbox's own token, is refused", {
    timeout: 120_000,
  }, async () => {
    const { claimAgent } = await import("@bhatti/agent-client");
    const sb = await create("claimed-once");
    expect(await createPathOf(product, sb.id)).toBe("template");
    const token = engineTokenOf(product, sb.id);
    const control = await product.env.options.dialer.endpoint(sb.ip, 1024);
    const hijack = {
      token: "f".repeat(32),
      sandbox_id: sb.id,
      hostname: "hijacked",
      env: {},
      secrets: {},
      files: [],
    };
    await expect(claimAgent(control, token, hijack)).rejects.toThrow(/claim refused/);
    const tpl = templatesOf(product, "busybox")[0]!;
    await expect(claimAgent(control, tpl.manifest.token, hijack)).rejects.toThrow(/auth required/);
    expect((await sh(product, sb.id, "hostname")).trim()).toBe("claimed-once");
    await destroy(sb.id);
  });

  it("sandboxes from one template are independent and carry nothing of a previous user", {
    timeout: 180_000,
  }, async () => {
    const first = await create("first-user");
    expect(await createPathOf(product, first.id)).toBe("template");
    await sh(product, first.id, "echo secret-of-first > /workspace/mine; echo tmp > /tmp/mine-too");
    const bg = await product.http("POST", `/sandboxes/${first.id}/exec`, {
      body: { cmd: ["sh", "-c", "sleep 600; : first-user-marker"], detach: true },
    });
    expect(bg.status, bg.text).toBe(200);
    await waitForProcess(product, first.id, "first-user-marker");
    const randomFirst = await sh(product, first.id, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'");

    // Another user (the admin) creates from the same template while the first sandbox runs.
    const second = await create("second-user", {}, true);
    expect(await createPathOf(product, second.id)).toBe("template");
    const r = await product.http("POST", `/sandboxes/${second.id}/exec`, {
      body: {
        cmd: ["sh", "-c", "ls /workspace /tmp; ps; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'"],
      },
      headers: { authorization: `Bearer ${product.adminKey}` },
    });
    expect(r.status, r.text).toBe(200);
    const seen = r.json<{ stdout: string }>().stdout;
    expect(seen).not.toContain("mine");
    expect(seen).not.toContain("first-user-marker");
    expect(seen).not.toContain(randomFirst);
    expect(randomFirst).toMatch(/^[0-9a-f]{64}$/);
    expect(second.ip).not.toBe(first.ip);
    expect(engineTokenOf(product, second.id)).not.toBe(engineTokenOf(product, first.id));

    await destroy(first.id);
    await destroy(second.id, true);
    // Nothing of the sandboxes is left on the template side: the template is intact and no
    // template sandbox is running or half-built.
    expect(readdirSync(join(product.env.stateDir, "templates", ".work"))).toEqual([]);
    expect(templatesOf(product, "busybox")).toHaveLength(1);
  });

  it("concurrent creates all restore the one template (there is no pool to run out of)", {
    timeout: 240_000,
  }, async () => {
    const made = await Promise.all([0, 1, 2].map((i) => create(`burst-${i}`)));
    for (const sb of made) expect(await createPathOf(product, sb.id)).toBe("template");
    expect(new Set(made.map((sb) => sb.ip)).size).toBe(3);
    for (const sb of made) expect((await sh(product, sb.id, "hostname")).trim()).toBe(sb.name);
    for (const sb of made) await destroy(sb.id);
  });

  it("a corrupt template: the create boots normally and the template is rebuilt", {
    timeout: 300_000,
  }, async () => {
    const before = templatesOf(product, "busybox")[0]!;
    writeFileSync(join(before.dir, "checkpoint", "checkpoint.img"), "not a checkpoint");
    const sb = await create("after-corrupt");
    expect(await createPathOf(product, sb.id)).toBe("boot");
    expect((await sh(product, sb.id, "echo booted")).trim()).toBe("booted");
    const rebuilt = await waitForTemplate(
      product,
      "busybox",
      (t) => t.manifest.createdAt > before.manifest.createdAt,
    );
    expect(rebuilt.manifest.token).not.toBe(before.manifest.token);
    const next = await create("after-rebuild");
    expect(await createPathOf(product, next.id)).toBe("template");
    expect((await sh(product, next.id, "hostname")).trim()).toBe("after-rebuild");
    await destroy(sb.id);
    await destroy(next.id);
  });

  it("a changed image gets a new template; the stale one is removed", { timeout: 300_000 }, async () => {
    const before = templatesOf(product, "busybox")[0]!;
    const imageJson = join(product.env.stateDir, "images", "busybox", "image.json");
    const meta = JSON.parse(readFileSync(imageJson, "utf8")) as Record<string, unknown>;
    writeFileSync(imageJson, JSON.stringify({ ...meta, built_at: new Date().toISOString() }));
    const sb = await create("image-changed");
    expect(await createPathOf(product, sb.id)).toBe("boot");
    const fresh = await waitForTemplate(product, "busybox", (t) => t.key !== before.key);
    await waitForTemplate(product, "busybox", () => templatesOf(product, "busybox").length === 1);
    expect(templatesOf(product, "busybox").map((t) => t.key)).toEqual([fresh.key]);
    await destroy(sb.id);
  });

  it("a restarted server keeps its template and its sandboxes", { timeout: 300_000 }, async () => {
    const before = templatesOf(product, "busybox")[0]!;
    const kept = await create("before-restart");
    expect(await createPathOf(product, kept.id)).toBe("template");
    await sh(product, kept.id, "echo kept > /workspace/kept");
    await product.stop();
    await product.restart();
    const sb = await create("after-restart");
    expect(await createPathOf(product, sb.id)).toBe("template");
    expect(templatesOf(product, "busybox").map((t) => t.key)).toEqual([before.key]);
    expect((await sh(product, kept.id, "cat /workspace/kept")).trim()).toBe("kept");
    expect((await sh(product, sb.id, "hostname")).trim()).toBe("after-restart");
    await destroy(kept.id);
    await destroy(sb.id);
  });
});
