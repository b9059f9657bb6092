// Named snapshots against the real product (`bhatti serve`, gVisor, the busybox image): a full
// snapshot carries memory, processes and TTY sessions into a fork with its own address while the
// original keeps running; forks are independent; a rewind restores the old files and processes;
// a filesystem-only snapshot boots fresh; names, ownership and quotas are enforced.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, type SandboxJson, exec, startProduct } from "../thermal/product-harness.js";
import { readTicker, sh, snapshotDirs, startTicker, waitForOutput } from "./snapshot-helpers.js";

interface SnapshotJson {
  id: string;
  name: string;
  source_sandbox: string;
  type: string;
  size_mb: number;
  created_at: string;
}

interface SandboxWithIp extends SandboxJson {
  ip: string;
  image: string;
  disk_size_mb: number;
}

describe("named snapshots (real product)", () => {
  let product: Product;
  let original: SandboxWithIp;
  let ticker: { pid: string; value: string };
  let sessionId = "";

  beforeAll(async () => {
    product = await startProduct({
      // Nothing cools down behind the test's back.
      flags: ["--thermal-warm-after=30m", "--thermal-cold-after=60m"],
    });
    const res = await product.http("POST", "/sandboxes", {
      body: { name: "origin", image: "busybox", disk_size_mb: 512 },
    });
    expect(res.status, res.text).toBe(201);
    original = res.json<SandboxWithIp>();
  }, 240_000);

  afterAll(async () => {
    await product?.dispose();
  }, 240_000);

  it("a full snapshot keeps the sandbox running; a fork has its memory, processes, TTY scrollback and a new address", {
    timeout: 300_000,
  }, async () => {
    const id = original.id;
    ticker = await startTicker(product, id);
    await sh(product, id, "echo before > /workspace/state; echo ram-only > /tmp/ram-marker");
    // A TTY session with output in its scrollback, left detached (sessions outlive clients).
    const ws = await product.websocket(`/sandboxes/${id}/ws?new=true`);
    try {
      const first = await new Promise<string>((resolve) =>
        ws.once("message", (d: Buffer) => resolve(d.toString())),
      );
      sessionId = (JSON.parse(first) as { session_id: string }).session_id;
      ws.send("echo SCROLL-MARK-$((6*7))\n");
      await waitForOutput(ws, /SCROLL-MARK-42/);
    } finally {
      ws.close();
    }

    const made = await product.cli(["snapshot", "create", "origin", "snap1", "--json"]);
    expect(made.code, made.stderr).toBe(0);
    const snap = JSON.parse(made.stdout) as SnapshotJson;
    expect(snap).toMatchObject({ name: "snap1", type: "memory", source_sandbox: id });
    expect(snap.size_mb).toBeGreaterThan(0);

    // The original kept running: same ticker process, same value in its memory.
    expect(await readTicker(product, id)).toEqual(ticker);
    const listed = await product.cli(["snapshot", "list", "--json"]);
    expect(JSON.parse(listed.stdout)).toEqual([snap]);

    const resumed = await product.http("POST", "/snapshots/snap1/resume", { body: { name: "fork1" } });
    expect(resumed.status, resumed.text).toBe(201);
    const fork = resumed.json<SandboxWithIp>();
    expect(fork.name).toBe("fork1");
    expect(fork.id).not.toBe(id);
    expect(fork.ip).not.toBe(original.ip);
    expect(fork.status).toBe("running");
    expect(fork).toMatchObject({ image: "busybox", disk_size_mb: 512 });

    // Same process (same pid inside), same value it held only in memory, same tmpfs content.
    expect(await readTicker(product, fork.id)).toEqual(ticker);
    expect(await sh(product, fork.id, "cat /tmp/ram-marker /workspace/state")).toBe("ram-only\nbefore\n");
    // The UTS hostname lives in the checkpointed memory: the fork keeps the original's, and its
    // /etc/hosts maps that name to the fork's own address.
    const hostname = await sh(product, id, "hostname");
    expect(await sh(product, fork.id, "hostname")).toBe(hostname);
    expect(await sh(product, fork.id, "cat /etc/hosts")).toContain(`${fork.ip}\t${hostname.trim()}`);
    // The guest took the new address: its interface has it, and it reaches the original over
    // the user's bridge (a busybox httpd in the original serves the ticker's file).
    expect(await sh(product, fork.id, "ip -4 addr")).toContain(fork.ip);
    await sh(product, id, "httpd -p 8080 -h /tmp");
    expect(await sh(product, fork.id, `wget -q -O - http://${original.ip}:8080/ram-marker`)).toBe(
      "ram-only\n",
    );
    // And the original reaches the fork.
    await sh(product, fork.id, "pkill httpd; true");
    await sh(product, fork.id, "httpd -p 8081 -h /workspace");
    expect(await sh(product, id, `wget -q -O - http://${fork.ip}:8081/state`)).toBe("before\n");

    // The TTY session came along, scrollback included.
    const sessions = await product.http("GET", `/sandboxes/${fork.id}/sessions`);
    expect(sessions.status).toBe(200);
    expect(sessions.text).toContain(sessionId);
    const attached = await product.websocket(`/sandboxes/${fork.id}/ws?session=${sessionId}`);
    try {
      await waitForOutput(attached, /SCROLL-MARK-42/);
    } finally {
      attached.close();
    }

    // The original is untouched by all of it.
    expect(await readTicker(product, id)).toEqual(ticker);
    const inspect = await product.http("GET", `/sandboxes/${fork.id}`);
    expect(inspect.json<SandboxWithIp>().ip).toBe(fork.ip);
  });

  it("two forks of one snapshot are independent", { timeout: 300_000 }, async () => {
    const a = await product.cli(["snapshot", "resume", "snap1", "--name", "fork2", "--json"]);
    expect(a.code, a.stderr).toBe(0);
    const b = await product.http("POST", "/snapshots/snap1/resume", { body: {} });
    expect(b.status, b.text).toBe(201);
    const forkA = JSON.parse(a.stdout) as SandboxWithIp;
    const forkB = b.json<SandboxWithIp>();
    expect(forkB.name).toMatch(/^snap1-[0-9a-f]{6}$/);
    expect(new Set([forkA.ip, forkB.ip, original.ip]).size).toBe(3);
    await sh(product, forkA.id, "echo forkA > /workspace/state; echo a > /tmp/ram-marker");
    expect(await sh(product, forkB.id, "cat /workspace/state /tmp/ram-marker")).toBe("before\nram-only\n");
    expect(await sh(product, forkA.id, "cat /workspace/state /tmp/ram-marker")).toBe("forkA\na\n");
    expect(await sh(product, original.id, "cat /workspace/state")).toBe("before\n");
    // A fork goes through a cold cycle like any sandbox: stop, start, same processes and files.
    expect((await product.http("POST", `/sandboxes/${forkA.id}/stop`)).status).toBe(200);
    expect((await product.http("POST", `/sandboxes/${forkA.id}/start`)).status).toBe(200);
    expect(await sh(product, forkA.id, "cat /workspace/state /tmp/ram-marker")).toBe("forkA\na\n");
    expect(await readTicker(product, forkA.id)).toEqual(ticker);
    for (const f of [forkA, forkB]) {
      expect((await product.http("DELETE", `/sandboxes/${f.id}`)).status).toBe(200);
    }
  });

  it("--into rewinds a sandbox: same id, name and address; the snapshot's files and processes", {
    timeout: 300_000,
  }, async () => {
    const id = original.id;
    await sh(
      product,
      id,
      "echo after > /workspace/state; echo new > /workspace/new-file; kill $(cat /tmp/ticker.pid)",
    );
    const r = await product.cli(["snapshot", "resume", "snap1", "--into", "origin", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const back = JSON.parse(r.stdout) as SandboxWithIp;
    expect(back).toMatchObject({ id, name: "origin", ip: original.ip, status: "running" });
    expect(await sh(product, id, "cat /workspace/state; ls /workspace")).toBe("before\nstate\n");
    expect(await readTicker(product, id)).toEqual(ticker);
  });

  it("a filesystem-only snapshot resumes by a fresh boot: files kept, memory and processes not", {
    timeout: 300_000,
  }, async () => {
    const made = await product.http("POST", `/sandboxes/${original.id}/checkpoint`, {
      body: { name: "files-only", type: "filesystem" },
    });
    expect(made.status, made.text).toBe(201);
    expect(made.json<SnapshotJson>().type).toBe("filesystem");
    expect(await readTicker(product, original.id)).toEqual(ticker);
    const r = await product.http("POST", "/snapshots/files-only/resume", { body: { name: "fresh" } });
    expect(r.status, r.text).toBe(201);
    const fresh = r.json<SandboxWithIp>();
    expect(await sh(product, fresh.id, "cat /workspace/state; ls /tmp")).toBe("before\n");
    expect((await product.http("DELETE", `/sandboxes/${fresh.id}`)).status).toBe(200);
  });

  it("names, ownership and quotas", { timeout: 300_000 }, async () => {
    const id = original.id;
    const bad = await product.http("POST", `/sandboxes/${id}/checkpoint`, { body: { name: "-bad name" } });
    expect(bad.status).toBe(400);
    const dup = await product.http("POST", `/sandboxes/${id}/checkpoint`, { body: { name: "snap1" } });
    expect(dup.status).toBe(409);
    expect((await product.http("GET", "/snapshots/nope")).status).toBe(404);
    expect((await product.http("POST", "/snapshots/nope/resume", { body: {} })).status).toBe(404);
    const cliBad = await product.cli(["snapshot", "create", "origin", "bad/name"]);
    expect(cliBad.code).not.toBe(0);

    // Another user sees none of it, and may hold only one snapshot.
    const other = await product.http("POST", "/users", {
      body: { name: "snap-other", limits: { max_snapshots: 1, creates_per_minute: 1000, max_sandboxes: 5 } },
    });
    expect(other.status, other.text).toBe(201);
    const as = { authorization: `Bearer ${other.json<{ api_key: string }>().api_key}` };
    expect((await product.http("GET", "/snapshots/snap1", { headers: as })).status).toBe(404);
    expect((await product.http("POST", "/snapshots/snap1/resume", { body: {}, headers: as })).status).toBe(
      404,
    );
    expect(
      (await product.http("POST", `/sandboxes/${id}/checkpoint`, { body: { name: "steal" }, headers: as }))
        .status,
    ).toBe(404);
    const theirs = await product.http("POST", "/sandboxes", {
      body: { name: "theirs", image: "busybox" },
      headers: as,
    });
    expect(theirs.status, theirs.text).toBe(201);
    const theirId = theirs.json<SandboxWithIp>().id;
    // Rewinding another user's sandbox with my snapshot: their sandbox is not mine (404).
    expect((await product.http("POST", "/snapshots/snap1/resume", { body: { into: theirId } })).status).toBe(
      404,
    );
    const one = await product.http("POST", `/sandboxes/${theirId}/checkpoint`, {
      body: { name: "one", type: "filesystem" },
      headers: as,
    });
    expect(one.status, one.text).toBe(201);
    const dirsBefore = snapshotDirs(product).length;
    const two = await product.http("POST", `/sandboxes/${theirId}/checkpoint`, {
      body: { name: "two", type: "filesystem" },
      headers: as,
    });
    expect(two.status).toBe(429);
    expect(snapshotDirs(product)).toHaveLength(dirsBefore);
    const list = await product.http("GET", "/snapshots", { headers: as });
    expect(list.json<SnapshotJson[]>().map((s) => s.name)).toEqual(["one"]);

    // Delete removes the row and the files.
    const del = await product.cli(["snapshot", "delete", "files-only", "--yes", "--json"]);
    expect(del.code, del.stderr).toBe(0);
    expect((await product.http("GET", "/snapshots/files-only")).status).toBe(404);
    expect(snapshotDirs(product)).toHaveLength(dirsBefore - 1);
    expect(snapshotDirs(product).every((d) => !d.endsWith(".tmp"))).toBe(true);
    expect((await exec(product, theirId, ["true"])).status).toBe(404);
  });

  it("a snapshot outlives its source sandbox", { timeout: 300_000 }, async () => {
    const rest = await product.http("GET", "/snapshots/snap1");
    const cli = await product.cli(["snapshot", "list", "--json"]);
    expect(JSON.parse(cli.stdout)).toContainEqual(rest.json());
    expect((await product.http("DELETE", `/sandboxes/${original.id}`)).status).toBe(200);
    const r = await product.http("POST", "/snapshots/snap1/resume", { body: { name: "orphan-fork" } });
    expect(r.status, r.text).toBe(201);
    const fork = r.json<SandboxWithIp>();
    expect(await readTicker(product, fork.id)).toEqual(ticker);
    expect(await sh(product, fork.id, "cat /workspace/state")).toBe("before\n");

    // A stopped sandbox can be rewound too: it comes back running, with the snapshot's processes.
    await sh(product, fork.id, "echo changed > /workspace/state");
    expect((await product.http("POST", `/sandboxes/${fork.id}/stop`)).status).toBe(200);
    const back = await product.http("POST", "/snapshots/snap1/resume", { body: { into: "orphan-fork" } });
    expect(back.status, back.text).toBe(200);
    expect(back.json<SandboxWithIp>()).toMatchObject({ id: fork.id, ip: fork.ip, status: "running" });
    expect(await sh(product, fork.id, "cat /workspace/state")).toBe("before\n");
    expect(await readTicker(product, fork.id)).toEqual(ticker);
  });
});
