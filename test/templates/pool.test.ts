// The ready pool (docs/templates.md) against the real product (`bhatti serve`, gVisor, busybox):
// after a user's create, the vmm restores one sandbox ahead of time for that user's next create
// and freezes it; that create claims it (own name, token, env, files, resolver name) instead of
// restoring. An entry is never another user's, a dead entry is not handed out, more creates than
// entries fall back to the template, a reservation given back stays usable, and a restart (or
// a stop) leaves no entry behind.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentError, createAgentClient } from "@bhatti/agent-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Product,
  type SandboxJson,
  killVmmAndWaitReady,
  startProduct,
} from "../thermal/product-harness.js";
import { sh } from "../snapshots/snapshot-helpers.js";
import { createPathOf, engineTokenOf, templatesOf, waitForTemplate } from "./template-helpers.js";

interface SandboxWithIp extends SandboxJson {
  ip: string;
}

interface LogLine {
  msg?: string;
  sandbox?: string;
  reason?: string;
  path?: string;
}

const logLines = (product: Product): LogLine[] =>
  product
    .output()
    .split("\n")
    .filter((l) => l.includes("{"))
    .map((l) => {
      try {
        // serve prefixes each child's lines with its name ("vmm     | {...}").
        return JSON.parse(l.slice(l.indexOf("{"))) as LogLine;
      } catch {
        return {};
      }
    });

/** Ids of the entries the vmm said were ready, oldest first. */
const readyEntries = (product: Product) =>
  logLines(product)
    .filter((l) => l.msg === "pool entry ready" && l.sandbox !== undefined)
    .map((l) => l.sandbox ?? "");

/** Entries ready now: said ready, and neither claimed by a create nor removed since. */
const liveEntries = (product: Product) => {
  const lines = logLines(product);
  const gone = new Set(
    lines
      // A created sandbox with an entry's id took it (or, when the claim failed, replaced it).
      .filter((l) => l.msg === "pool entry removed" || l.msg === "sandbox created")
      .map((l) => l.sandbox),
  );
  return readyEntries(product).filter((id) => !gone.has(id));
};

/** Waits until an entry is ready; returns its id. */
async function waitForLiveEntry(product: Product, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const live = liveEntries(product);
    if (live.length > 0) return live[0] ?? "";
    if (Date.now() > deadline)
      throw new Error(`no pool entry ready; output tail:\n${product.output().slice(-3000)}`);
    await sleep(100);
  }
}

/** Waits for a "pool entry ready" line not in `known`; returns its sandbox id. */
async function waitForNewEntry(product: Product, known: readonly string[], timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = readyEntries(product).find((id) => !known.includes(id));
    if (fresh !== undefined) return fresh;
    if (Date.now() > deadline)
      throw new Error(`no new pool entry; output tail:\n${product.output().slice(-3000)}`);
    await sleep(100);
  }
}

/** Waits for the vmm to say it removed entry `id`; returns the reason it gave. */
async function waitForRemoval(product: Product, id: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(product).find((l) => l.msg === "pool entry removed" && l.sandbox === id);
    if (line !== undefined) return line.reason ?? "";
    if (Date.now() > deadline)
      throw new Error(`entry ${id} not removed; output tail:\n${product.output().slice(-3000)}`);
    await sleep(100);
  }
}

/** What of sandbox `id` exists on the host: its directory, runsc state, cgroup, netns. */
function hostTracesOf(product: Product, id: string): string[] {
  const found: string[] = [];
  if (existsSync(join(product.env.stateDir, "sandboxes", id))) found.push("dir");
  if (existsSync(join(product.env.stateDir, "runsc", id))) found.push("runsc state");
  if (existsSync(join("/sys/fs/cgroup/unified", product.env.options.cgroupParent, id))) found.push("cgroup");
  if (existsSync("/run/netns") && readdirSync("/run/netns").some((n) => n.endsWith(id))) found.push("netns");
  return found;
}

/** Pids of the processes in sandbox `id`'s cgroup (its runsc sandbox, gofer...). */
function pidsOf(product: Product, id: string): number[] {
  const procs = join("/sys/fs/cgroup/unified", product.env.options.cgroupParent, id, "cgroup.procs");
  return readFileSync(procs, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map(Number);
}

describe("the ready pool (real product)", () => {
  let product: Product;

  beforeAll(async () => {
    product = await startProduct({
      flags: [
        "--thermal-warm-after=30m",
        "--thermal-cold-after=60m",
        "--create-template-images=busybox",
        "--create-pool-size=1",
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

  it("the create after a user's first claims the entry made for them: own name, token, env, files, DNS name", {
    timeout: 240_000,
  }, async () => {
    const known = readyEntries(product);
    const first = await create("pool-first", { env: { WHO: "first" } });
    expect(await createPathOf(product, first.id)).toBe("template");
    await sh(product, first.id, "echo first-secret > /workspace/mine");
    const entry = await waitForNewEntry(product, known);

    const second = await create("pool-second", {
      env: { WHO: "second" },
      files: [
        { guest_path: "/workspace/given.txt", content: Buffer.from("given-at-create").toString("base64") },
      ],
    });
    // The entry's id became the sandbox's: the row took it.
    expect(second.id).toBe(entry);
    expect(await createPathOf(product, second.id)).toBe("pool");
    const out = await sh(
      product,
      second.id,
      'echo "$WHO"; cat /workspace/given.txt; echo; hostname; grep -c "pool-second" /etc/hosts; ls /workspace; ip addr',
    );
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe("second");
    expect(lines[1]).toBe("given-at-create");
    expect(lines[2]).toBe("pool-second");
    expect(Number(lines[3])).toBeGreaterThanOrEqual(1);
    expect(out).not.toContain("mine");
    expect(out).toContain(`inet ${second.ip}/`);
    // The user's network: the same /24 as their first sandbox, and the sibling finds it by name.
    expect(second.ip.split(".").slice(0, 3)).toEqual(first.ip.split(".").slice(0, 3));
    // (The resolver's name for it is set by the network service's RenameSandbox, tested in
    // test/network; this harness wires sandboxes without the network service.)
    // The template's token is refused; the sandbox's own works.
    const tpl = templatesOf(product, "busybox")[0]!;
    const token = engineTokenOf(product, second.id);
    expect(token).not.toBe(tpl.manifest.token);
    const stale = await createAgentClient({
      control: await product.env.options.dialer.endpoint(second.ip, 1024),
      forward: await product.env.options.dialer.endpoint(second.ip, 1025),
      token: tpl.manifest.token,
      pool: false,
    });
    try {
      await expect(stale.exec(["true"])).rejects.toBeInstanceOf(AgentError);
    } finally {
      stale.close();
    }
    // Files and listing work like on any sandbox.
    await sh(product, second.id, "printf written > /workspace/w.txt");
    const read = await product.http("GET", `/sandboxes/${second.id}/files?path=/workspace/w.txt`);
    expect(read.status, read.text).toBe(200);
    expect(read.text).toBe("written");
    const list = await product.http("GET", "/sandboxes");
    expect(
      list
        .json<{ id: string }[]>()
        .map((s) => s.id)
        .sort(),
    ).toEqual([first.id, second.id].sort());

    await destroy(first.id);
    await destroy(second.id);
    expect(hostTracesOf(product, second.id)).toEqual([]);
    // The claim asked for the next one.
    expect(await waitForLiveEntry(product)).not.toBe(entry);
  });

  it("an entry is its user's only: another user's create never gets it and sees nothing of it", {
    timeout: 240_000,
  }, async () => {
    // The previous test left a ready entry for the test user (or one is on its way).
    const mine = await waitForLiveEntry(product);
    const theirs = await create("admin-one", {}, true);
    expect(theirs.id).not.toBe(mine);
    expect(await createPathOf(product, theirs.id)).toBe("template");
    const r = await product.http("POST", `/sandboxes/${theirs.id}/exec`, {
      body: { cmd: ["sh", "-c", "ls /workspace; env"] },
      headers: { authorization: `Bearer ${product.adminKey}` },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json<{ stdout: string }>().stdout).not.toContain("WHO=");
    // The user's own create still gets their entry.
    const own = await create("own-again");
    expect(own.id).toBe(mine);
    expect(await createPathOf(product, own.id)).toBe("pool");
    expect((await sh(product, own.id, "echo $WHO; ls /workspace")).trim()).toBe("");
    await destroy(theirs.id, true);
    await destroy(own.id);
  });

  it("a reservation given back (an idempotent create by name) keeps the entry for the next create", {
    timeout: 240_000,
  }, async () => {
    const entry = await waitForLiveEntry(product);
    const holder = await create("holder");
    expect(holder.id).toBe(entry);
    const next = await waitForLiveEntry(product);
    // Same name again: the existing sandbox is the answer; the reservation goes back.
    const again = await product.http("POST", "/sandboxes", { body: { name: "holder" } });
    expect(again.status, again.text).toBe(200);
    expect(again.json<SandboxJson>().id).toBe(holder.id);
    const fresh = await create("after-release");
    expect(fresh.id).toBe(next);
    expect(await createPathOf(product, fresh.id)).toBe("pool");
    await destroy(holder.id);
    await destroy(fresh.id);
  });

  it("more creates than entries all succeed: one claims the entry, the rest restore the template", {
    timeout: 240_000,
  }, async () => {
    const entry = await waitForLiveEntry(product);
    const made = await Promise.all([0, 1, 2].map((i) => create(`burst-${i}`)));
    const paths = await Promise.all(made.map((sb) => createPathOf(product, sb.id)));
    expect(paths.filter((p) => p === "pool")).toHaveLength(1);
    expect(paths.filter((p) => p === "template")).toHaveLength(2);
    expect(made.map((sb) => sb.id)).toContain(entry);
    for (const sb of made) expect((await sh(product, sb.id, "hostname")).trim()).toBe(sb.name);
    expect(new Set(made.map((sb) => sb.ip)).size).toBe(3);
    for (const sb of made) await destroy(sb.id);
  });

  it("an entry whose sandbox died is not handed out: the create restores the template, the entry is removed and replaced", {
    timeout: 240_000,
  }, async () => {
    const known = readyEntries(product);
    const entry = await waitForLiveEntry(product);
    expect(hostTracesOf(product, entry)).toContain("cgroup");
    for (const pid of pidsOf(product, entry)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    // Dead: its cgroup has emptied.
    for (let i = 0; pidsOf(product, entry).length > 0; i++) {
      if (i > 600) throw new Error("the entry's processes did not die");
      await sleep(50);
    }
    const sb = await create("after-death");
    expect(sb.id).not.toBe(entry);
    expect(await createPathOf(product, sb.id)).toBe("template");
    expect(await waitForRemoval(product, entry)).toMatch(/died/);
    for (let i = 0; hostTracesOf(product, entry).length > 0; i++) {
      if (i > 600) throw new Error(`the dead entry left ${hostTracesOf(product, entry).join(", ")}`);
      await sleep(50);
    }
    expect((await sh(product, sb.id, "hostname")).trim()).toBe("after-death");
    const replacement = await waitForNewEntry(product, [
      ...readyEntries(product).filter((id) => id === entry),
      ...known,
    ]);
    expect(replacement).not.toBe(entry);
    await destroy(sb.id);
  });

  it("a vmm killed with SIGKILL leaves its entries to the next start, which removes them; a stop leaves none", {
    timeout: 240_000,
  }, async () => {
    const entry = await waitForLiveEntry(product);
    const kept = await create("kept-across");
    expect(kept.id).toBe(entry);
    const waiting = await waitForLiveEntry(product);
    expect(hostTracesOf(product, waiting)).toContain("dir");

    await killVmmAndWaitReady(product);
    // Adoption removed the entry (it has no record); the claimed sandbox was adopted.
    expect(hostTracesOf(product, waiting)).toEqual([]);
    expect((await sh(product, kept.id, "hostname")).trim()).toBe("kept-across");
    // The demand died with the vmm: the next create restores, and asks for a new entry.
    const beforeRefill = readyEntries(product);
    const after = await create("after-crash");
    expect(await createPathOf(product, after.id)).toBe("template");
    const refilled = await waitForNewEntry(product, beforeRefill);

    await product.stop();
    // A stopped vmm removes its entries; claimed sandboxes stay for the next start.
    expect(hostTracesOf(product, refilled)).toEqual([]);
    expect(hostTracesOf(product, kept.id)).toContain("dir");
    await product.restart();
    expect((await sh(product, after.id, "hostname")).trim()).toBe("after-crash");
    await destroy(kept.id);
    await destroy(after.id);
  });
});

describe("the ready pool through the network service (real product)", () => {
  let product: Product;

  beforeAll(async () => {
    product = await startProduct({
      flags: [
        "--thermal-warm-after=30m",
        "--thermal-cold-after=60m",
        "--create-template-images=busybox",
        "--create-pool-size=1",
        // The product's own network (per-user bridge, resolver, MACs from addresses), not the
        // harness's local one.
        "--vmm-local-network=none",
      ],
    });
    await waitForTemplate(product, "busybox");
  }, 300_000);

  afterAll(async () => {
    await product?.dispose();
  }, 240_000);

  it("a claimed entry answers to its own name in the resolver, and claims in a row each run their first command", {
    timeout: 240_000,
  }, async () => {
    const create = async (name: string) => {
      const res = await product.http("POST", "/sandboxes", { body: { name } });
      expect(res.status, res.text).toBe(201);
      return res.json<SandboxWithIp>();
    };
    const first = await create("net-first");
    expect(await createPathOf(product, first.id)).toBe("template");
    const entry = await waitForLiveEntry(product);
    const second = await create("net-second");
    expect(second.id).toBe(entry);
    expect(await createPathOf(product, second.id)).toBe("pool");
    // The resolver (network service) answers the sandbox's name, not the entry's placeholder.
    expect(await sh(product, first.id, "nslookup net-second 2>&1 || true")).toContain(second.ip);
    expect(await sh(product, first.id, `nslookup pool-${entry.slice(0, 6)} 2>&1 || true`)).not.toContain(
      second.ip,
    );
    await product.http("DELETE", `/sandboxes/${second.id}`);
    // Each claim reuses the address the previous sandbox had: its first command must run.
    for (let i = 0; i < 4; i++) {
      await waitForLiveEntry(product);
      const sb = await create(`net-row-${i}`);
      expect(await createPathOf(product, sb.id)).toBe("pool");
      expect((await sh(product, sb.id, "hostname")).trim()).toBe(`net-row-${i}`);
      await product.http("DELETE", `/sandboxes/${sb.id}`);
    }
    await product.http("DELETE", `/sandboxes/${first.id}`);
  });
});
