import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loopDevicesBackedBy, mountedPaths } from "@bhatti/service-vmm/adapters";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import {
  type Product,
  type SandboxJson,
  exec,
  killVmmAndWaitReady,
  startProduct,
  waitForSandbox,
} from "../thermal/product-harness.js";

interface VolumeJson {
  id: string;
  name: string;
  size_mb: number;
  status: string;
  attachments: { sandbox_id: string; mount: string; read_only: boolean }[];
}

/**
 * Volumes through the whole product (`bhatti serve`, gvisor, busybox): sparse ext4 images,
 * loop-mounted once on the host and bound into each sandbox by runsc's gofer.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("volumes (product)", () => {
  let product: Product;
  const volumesDir = () => join(product.env.stateDir, "volumes");
  const mntOf = (id: string) => join(volumesDir(), "mnt", id);

  const createVolume = async (name: string, sizeMb: number) => {
    const res = await product.http("POST", "/volumes", { body: { name, size_mb: sizeMb } });
    expect(res.status, res.text).toBe(201);
    return res.json<VolumeJson>();
  };
  const getVolume = async (name: string) => {
    const res = await product.http("GET", `/volumes/${name}`);
    expect(res.status, res.text).toBe(200);
    return res.json<VolumeJson>();
  };
  const createSandbox = async (
    name: string,
    volumes: { name: string; mount: string; read_only?: boolean }[],
  ) => {
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox", volumes } });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxJson>();
  };
  const destroy = async (id: string) => {
    const res = await product.http("DELETE", `/sandboxes/${id}`);
    expect(res.status, res.text).toBe(200);
  };
  const sh = async (id: string, script: string) => {
    const r = await exec(product, id, ["sh", "-c", script]);
    expect(r.status).toBe(200);
    return r.body as { stdout: string; stderr?: string; exit_code: number };
  };
  /** The host mount of a volume and its loop device are gone (the kernel frees the device asynchronously). */
  const waitReleased = async (volumeId: string) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const mounted = mountedPaths().has(mntOf(volumeId));
      const loops = loopDevicesBackedBy(volumesDir()).filter((l) => l.includes(volumeId));
      if (!mounted && loops.length === 0) return;
      if (Date.now() > deadline)
        throw new Error(`volume ${volumeId} still mounted=${mounted} loops=${loops}`);
      await sleep(50);
    }
  };

  beforeAll(async () => {
    product = await startProduct({ flags: [] });
  }, 180_000);

  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  it("refuses bad names, sizes and mount paths with 400, and unknown volumes with 404", async () => {
    for (const body of [
      { name: "-bad", size_mb: 64 },
      { name: "a/b", size_mb: 64 },
      { name: "ok", size_mb: 0 },
      { name: "ok", size_mb: 8 }, // under volume_min_size_mb (16)
      { name: "ok", size_mb: 1.5 },
      { name: "ok", size_mb: "1G" },
      { name: "", size_mb: 64 },
    ]) {
      const res = await product.http("POST", "/volumes", { body });
      expect(res.status, `${JSON.stringify(body)}: ${res.text}`).toBe(400);
    }
    expect((await product.http("GET", "/volumes")).json<VolumeJson[]>()).toEqual([]);
    const v = await createVolume("checks", 16);
    expect(v).toMatchObject({ name: "checks", size_mb: 16, status: "ready", attachments: [] });
    expect((await product.http("POST", "/volumes", { body: { name: "checks", size_mb: 16 } })).status).toBe(
      409,
    );
    for (const volumes of [
      [{ name: "checks", mount: "relative" }],
      [{ name: "checks", mount: "/" }],
      [{ name: "checks", mount: "/etc/x" }],
      [{ name: "checks", mount: "/proc" }],
      [{ name: "checks", mount: "/.bhatti" }],
      [{ name: "checks", mount: "/a/../b" }],
      [
        { name: "checks", mount: "/data" },
        { name: "other", mount: "/data/" },
      ],
      [
        { name: "checks", mount: "/a" },
        { name: "checks", mount: "/b" },
      ],
      [{ name: "checks", mount: "/data", read_only: "yes" }],
    ]) {
      const res = await product.http("POST", "/sandboxes", {
        body: { name: "never", image: "busybox", volumes },
      });
      expect(res.status, `${JSON.stringify(volumes)}: ${res.text}`).toBe(400);
    }
    const missing = await product.http("POST", "/sandboxes", {
      body: { name: "never", image: "busybox", volumes: [{ name: "nope", mount: "/data" }] },
    });
    expect(missing.status, missing.text).toBe(404);
    // Nothing was left behind by the refused creates.
    expect((await product.http("GET", "/sandboxes")).json<unknown[]>()).toEqual([]);
    expect((await product.http("DELETE", "/volumes/checks")).status).toBe(200);
    expect((await product.http("GET", "/volumes/checks")).status).toBe(404);
  });

  it("persists across destroy and re-create, owned by uid 1000; the host mount goes with the last sandbox", async () => {
    const v = await createVolume("data", 64);
    const image = join(
      volumesDir(),
      readdirSync(volumesDir()).find((d) => d !== "mnt") ?? "",
      `${v.id}.ext4`,
    );
    expect(existsSync(image)).toBe(true);
    const a = await createSandbox("writer", [{ name: "data", mount: "/data" }]);
    expect(mountedPaths().has(mntOf(v.id))).toBe(true);
    const w = await sh(a.id, "id -u; stat -c %u:%g /data; echo kept > /data/file && sync && cat /data/file");
    expect(w.exit_code, JSON.stringify(w)).toBe(0);
    expect(w.stdout).toBe("1000\n1000:1000\nkept\n");
    expect((await getVolume("data")).attachments).toEqual([
      expect.objectContaining({ sandbox_id: a.id, mount: "/data", read_only: false }),
    ]);
    await destroy(a.id);
    expect((await getVolume("data")).attachments).toEqual([]);
    await waitReleased(v.id);
    const b = await createSandbox("reader", [{ name: "data", mount: "/home/user/work" }]);
    expect((await sh(b.id, "cat /home/user/work/file")).stdout).toBe("kept\n");
    await destroy(b.id);
    await waitReleased(v.id);
  });

  it("shares read-write between sandboxes; read-only refuses writes with EROFS", async () => {
    const v = await getVolume("data");
    const one = await createSandbox("share-1", [{ name: "data", mount: "/data" }]);
    const two = await createSandbox("share-2", [{ name: "data", mount: "/mnt/shared" }]);
    const ro = await createSandbox("share-ro", [{ name: "data", mount: "/data", read_only: true }]);
    expect((await getVolume("data")).attachments).toHaveLength(3);
    expect((await sh(one.id, "echo from-one > /data/one")).exit_code).toBe(0);
    expect((await sh(two.id, "cat /mnt/shared/one; echo from-two > /mnt/shared/two")).stdout).toBe(
      "from-one\n",
    );
    expect((await sh(one.id, "cat /data/two")).stdout).toBe("from-two\n");
    expect((await sh(ro.id, "cat /data/one /data/two")).stdout).toBe("from-one\nfrom-two\n");
    const denied = await sh(ro.id, "echo x > /data/three");
    expect(denied.exit_code).not.toBe(0);
    expect(denied.stdout + (denied.stderr ?? "")).toMatch(/read-only file system/i);
    expect((await sh(one.id, "test -e /data/three && echo present || echo absent")).stdout).toBe("absent\n");

    // Delete and resize while attached: 409, naming the sandboxes.
    const del = await product.http("DELETE", "/volumes/data");
    expect(del.status).toBe(409);
    for (const name of ["share-1", "share-2", "share-ro"]) expect(del.text).toContain(name);
    const resize = await product.http("POST", "/volumes/data/resize", { body: { size_mb: 128 } });
    expect(resize.status).toBe(409);
    expect(resize.text).toContain("share-1");

    // One host mount serves all three; it stays until the last one goes.
    await destroy(one.id);
    await destroy(two.id);
    expect(mountedPaths().has(mntOf(v.id))).toBe(true);
    expect((await sh(ro.id, "cat /data/one")).stdout).toBe("from-one\n");
    await destroy(ro.id);
    await waitReleased(v.id);
  });

  it("concurrent creates on one fresh volume share one host mount; concurrent destroys release it", async () => {
    const v = await createVolume("burst", 32);
    const names = ["burst-1", "burst-2", "burst-3"];
    const made = await Promise.all(
      names.map((name, i) => createSandbox(name, [{ name: "burst", mount: "/b", read_only: i === 2 }])),
    );
    expect(mountedPaths().has(mntOf(v.id))).toBe(true);
    expect(loopDevicesBackedBy(volumesDir()).filter((l) => l.includes(v.id))).toHaveLength(1);
    await Promise.all(made.slice(0, 2).map((sb, i) => sh(sb.id, `echo ${i} > /b/f${i}`)));
    expect((await sh(made[2]?.id ?? "", "cat /b/f0 /b/f1")).stdout).toBe("0\n1\n");
    await Promise.all(made.map((sb) => destroy(sb.id)));
    await waitReleased(v.id);
    expect((await product.http("DELETE", "/volumes/burst")).status).toBe(200);
  });

  it("the image size is the quota: ENOSPC inside, the sandbox's own disk unaffected", async () => {
    await createVolume("small", 16);
    const sb = await createSandbox("filler", [{ name: "small", mount: "/small" }]);
    const fill = await sh(sb.id, "dd if=/dev/zero of=/small/fill bs=1M count=64 2>&1; echo rc=$?");
    expect(fill.stdout).toMatch(/no space left on device/i);
    expect(fill.stdout).not.toContain("rc=0");
    const size = await sh(sb.id, "du -m /small/fill | cut -f1");
    expect(Number(size.stdout.trim())).toBeLessThan(16);
    const own = await sh(
      sb.id,
      'dd if=/dev/zero of="$HOME/own" bs=1M count=32 2>/dev/null && sync && du -m "$HOME/own" | cut -f1',
    );
    expect(own.exit_code, JSON.stringify(own)).toBe(0);
    expect(Number(own.stdout.trim())).toBeGreaterThanOrEqual(32);
    // Freeing space on the volume makes it writable again.
    expect((await sh(sb.id, "rm /small/fill && echo ok > /small/after && cat /small/after")).stdout).toBe(
      "ok\n",
    );
    await destroy(sb.id);
  });

  it("another user's volume is 404 for attach, get, resize and delete", async () => {
    const other = await product.http("POST", "/users", { body: { name: `other-${product.env.runId}` } });
    expect(other.status, other.text).toBe(201);
    const key = other.json<{ api_key: string }>().api_key;
    const headers = { authorization: `Bearer ${key}` };
    const attach = await product.http("POST", "/sandboxes", {
      body: { name: "thief", image: "busybox", volumes: [{ name: "data", mount: "/data" }] },
      headers,
    });
    expect(attach.status, attach.text).toBe(404);
    expect((await product.http("GET", "/volumes/data", { headers })).status).toBe(404);
    expect(
      (await product.http("POST", "/volumes/data/resize", { body: { size_mb: 128 }, headers })).status,
    ).toBe(404);
    expect((await product.http("DELETE", "/volumes/data", { headers })).status).toBe(404);
    expect((await product.http("GET", "/volumes", { headers })).json<unknown[]>()).toEqual([]);
    expect((await product.http("GET", "/sandboxes", { headers })).json<unknown[]>()).toEqual([]);
  });

  it("stop/start (cold checkpoint and restore) keeps the volume mounted with its data", async () => {
    const v = await getVolume("data");
    const sb = await createSandbox("cold", [{ name: "data", mount: "/data" }]);
    expect((await sh(sb.id, "echo before-stop > /data/cold && sync")).exit_code).toBe(0);
    const stop = await product.http("POST", `/sandboxes/${sb.id}/stop`);
    expect(stop.status, stop.text).toBe(200);
    await waitForSandbox(product, sb.id, (s) => s.thermal === "cold");
    // Cold: no container, so nothing holds the host mount.
    await waitReleased(v.id);
    const start = await product.http("POST", `/sandboxes/${sb.id}/start`);
    expect(start.status, start.text).toBe(200);
    const after = await sh(sb.id, "cat /data/cold; echo after-start >> /data/cold; cat /data/cold");
    expect(after.stdout).toBe("before-stop\nbefore-stop\nafter-start\n");
    expect(mountedPaths().has(mntOf(v.id))).toBe(true);
    await destroy(sb.id);
    await waitReleased(v.id);
  });

  it("a vmm killed with SIGKILL and restarted re-adopts the mounts and their refcounts", async () => {
    const v = await getVolume("data");
    const one = await createSandbox("adopt-1", [{ name: "data", mount: "/data" }]);
    const two = await createSandbox("adopt-2", [{ name: "data", mount: "/data", read_only: true }]);
    expect((await sh(one.id, "echo pre-crash > /data/adopt")).exit_code).toBe(0);
    await killVmmAndWaitReady(product);
    expect(mountedPaths().has(mntOf(v.id))).toBe(true);
    expect((await sh(two.id, "cat /data/adopt")).stdout).toBe("pre-crash\n");
    expect((await sh(one.id, "echo post-crash >> /data/adopt && cat /data/adopt")).stdout).toBe(
      "pre-crash\npost-crash\n",
    );
    // The refcount was rebuilt: the first destroy keeps the mount, the last releases it.
    await destroy(one.id);
    expect(mountedPaths().has(mntOf(v.id))).toBe(true);
    expect((await sh(two.id, "cat /data/adopt")).stdout).toBe("pre-crash\npost-crash\n");
    await destroy(two.id);
    await waitReleased(v.id);
  });

  it("resize grows a detached volume (data kept), never shrinks; delete removes the image", async () => {
    const v = await getVolume("data");
    expect((await product.http("POST", "/volumes/data/resize", { body: { size_mb: 32 } })).status).toBe(400);
    const grown = await product.http("POST", "/volumes/data/resize", { body: { size_mb: 128 } });
    expect(grown.status, grown.text).toBe(200);
    expect(grown.json<VolumeJson>()).toMatchObject({ size_mb: 128, status: "ready" });
    const sb = await createSandbox("grown", [{ name: "data", mount: "/data" }]);
    const df = await sh(sb.id, "cat /data/file; df -m /data | tail -1 | awk '{print $2}'");
    const [file, total] = df.stdout.trim().split("\n");
    expect(file).toBe("kept");
    expect(Number(total)).toBeGreaterThan(100);
    await destroy(sb.id);
    await waitReleased(v.id);
    const del = await product.http("DELETE", "/volumes/data");
    expect(del.status, del.text).toBe(200);
    expect(readdirSync(volumesDir(), { recursive: true }).filter((f) => String(f).includes(v.id))).toEqual(
      [],
    );
  });

  it("the CLI: volume create/list/resize/delete and create --volume, with --json", async () => {
    const created = await product.cli(["volume", "create", "cli-vol", "--size", "32M", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: "cli-vol", size_mb: 32, status: "ready" });
    const bad = await product.cli(["volume", "create", "cli-bad", "--size", "lots"]);
    expect(bad.code).not.toBe(0);
    const sb = await product.cli([
      "create",
      "--name",
      "cli-sb",
      "--image",
      "busybox",
      "--volume",
      "cli-vol:/vol:ro",
      "--json",
    ]);
    expect(sb.code, sb.stderr).toBe(0);
    const id = JSON.parse(sb.stdout).id as string;
    const listed = await product.cli(["volume", "list", "--json"]);
    expect(JSON.parse(listed.stdout).filter((v: VolumeJson) => v.name === "cli-vol")).toEqual([
      expect.objectContaining({
        name: "cli-vol",
        attachments: [expect.objectContaining({ sandbox_id: id, mount: "/vol", read_only: true })],
      }),
    ]);
    const refused = await product.cli(["volume", "delete", "cli-vol", "-y"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("cli-sb");
    await destroy(id);
    const resized = await product.cli(["volume", "resize", "cli-vol", "--size", "64M", "--json"]);
    expect(resized.code, resized.stderr).toBe(0);
    expect(JSON.parse(resized.stdout)).toMatchObject({ size_mb: 64 });
    const deleted = await product.cli(["volume", "delete", "cli-vol", "-y", "--json"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ status: "deleted" });
  });
});
