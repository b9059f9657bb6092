// Snapshots of sandboxes with volumes, against the real product (`bhatti serve`, gVisor, busybox,
// loop-mounted ext4 volumes): a resume re-attaches the snapshot's volumes by name at the same
// mount points (read-only as recorded) and shares them with the original; a rewind makes the
// sandbox's mount set the snapshot's; a missing volume is refused by name with nothing left
// behind; a resume the vmm fails half-way releases everything it took; the host mounts and loop
// devices go with the last sandbox.
import { existsSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { loopDevicesBackedBy, mountedPaths } from "@bhatti/service-vmm/adapters";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUNSC_PATH } from "../engine-conformance/gvisor-factory.js";
import { type Product, type SandboxJson, startProduct, waitForSandbox } from "../thermal/product-harness.js";
import { readTicker, sh, startTicker, waitUntil } from "./snapshot-helpers.js";

interface VolumeJson {
  id: string;
  name: string;
  attachments: { sandbox_id: string; mount: string; read_only: boolean }[];
}

type Mount = { name: string; mount: string; read_only?: boolean };

describe("snapshots with volumes (real product)", () => {
  let product: Product;
  let shared: VolumeJson;
  let ref: VolumeJson;
  let src: SandboxJson;
  let fork: SandboxJson;
  let ticker: { pid: string; value: string };

  const volumesDir = () => join(product.env.stateDir, "volumes");
  const mntOf = (id: string) => join(volumesDir(), "mnt", id);
  const imageOf = (id: string) => {
    const user = readdirSync(volumesDir()).find((d) => d !== "mnt") ?? "";
    return join(volumesDir(), user, `${id}.ext4`);
  };
  const loopsOf = (id: string) => loopDevicesBackedBy(volumesDir()).filter((l) => l.includes(id));

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
  const attachmentsOf = async (name: string) =>
    (await getVolume(name)).attachments
      .map((a) => `${a.sandbox_id}:${a.mount}:${a.read_only ? "ro" : "rw"}`)
      .sort();
  const createSandbox = async (name: string, volumes: Mount[], extra: Record<string, unknown> = {}) => {
    const res = await product.http("POST", "/sandboxes", {
      body: { name, image: "busybox", volumes, ...extra },
    });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxJson>();
  };
  const destroy = async (id: string) => {
    const res = await product.http("DELETE", `/sandboxes/${id}`);
    expect(res.status, res.text).toBe(200);
  };
  const sandboxIds = async () =>
    (await product.http("GET", "/sandboxes"))
      .json<SandboxJson[]>()
      .map((s) => s.id)
      .sort();
  /** Containers runsc knows, sandbox directories the vmm keeps: the engine's own view. */
  const runscContainers = () =>
    execFileSync(RUNSC_PATH, [`--root=${join(product.env.stateDir, "runsc")}`, "list", "--quiet"], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((l) => l.trim() !== "")
      .sort();
  const sandboxDirs = () => {
    const dir = join(product.env.stateDir, "sandboxes");
    return existsSync(dir)
      ? readdirSync(dir)
          .filter((d) => /^[0-9a-f]{16}$/.test(d))
          .sort()
      : [];
  };
  /** The host mount of a volume and its loop device are gone (the kernel frees loops asynchronously). */
  const waitReleased = (volumeId: string) =>
    waitUntil(
      `volume ${volumeId} released`,
      async () => ({ mounted: mountedPaths().has(mntOf(volumeId)), loops: loopsOf(volumeId).length }),
      (s) => !s.mounted && s.loops === 0,
      30_000,
    );

  beforeAll(async () => {
    product = await startProduct({
      // Nothing cools down behind the test's back.
      flags: ["--thermal-warm-after=30m", "--thermal-cold-after=60m"],
    });
  }, 240_000);

  afterAll(async () => {
    await product?.dispose();
  }, 240_000);

  it("a fork re-attaches the snapshot's volumes by name at the same mount points; writes are shared; its processes survive, and a stop/start", {
    timeout: 300_000,
  }, async () => {
    shared = await createVolume("shared", 64);
    ref = await createVolume("ref", 16);
    const writer = await createSandbox("writer", [{ name: "ref", mount: "/ref" }]);
    await sh(product, writer.id, "echo reference > /ref/hello && sync");
    await destroy(writer.id);

    src = await createSandbox("src", [
      { name: "shared", mount: "/data" },
      { name: "ref", mount: "/ref", read_only: true },
    ]);
    await sh(product, src.id, "echo from-src > /data/a && sync");
    ticker = await startTicker(product, src.id);
    const made = await product.http("POST", `/sandboxes/${src.id}/checkpoint`, { body: { name: "withvol" } });
    expect(made.status, made.text).toBe(201);

    const resumed = await product.http("POST", "/snapshots/withvol/resume", { body: { name: "fork" } });
    expect(resumed.status, resumed.text).toBe(201);
    fork = resumed.json<SandboxJson>();
    expect(fork.id).not.toBe(src.id);
    // Same process with the value it held only in memory, and the volumes at the same paths.
    expect(await readTicker(product, fork.id)).toEqual(ticker);
    expect(await sh(product, fork.id, "cat /data/a /ref/hello")).toBe("from-src\nreference\n");
    // Read-write and shared both ways with the original (one host mount serves both).
    await sh(product, fork.id, "echo from-fork > /data/b");
    expect(await sh(product, src.id, "cat /data/b")).toBe("from-fork\n");
    await sh(product, src.id, "echo from-src-again > /data/c");
    expect(await sh(product, fork.id, "cat /data/c")).toBe("from-src-again\n");
    // Read-only as the snapshot recorded it.
    const roWrite = await sh(product, fork.id, "(echo x > /ref/nope) 2>&1; echo rc=$?");
    expect(roWrite).toMatch(/read-only/i);
    expect(roWrite).toContain("rc=1");
    // The store has the fork's attachments (v1 R16): delete is refused while it holds them.
    expect(await attachmentsOf("shared")).toEqual([`${fork.id}:/data:rw`, `${src.id}:/data:rw`].sort());
    expect(await attachmentsOf("ref")).toEqual([`${fork.id}:/ref:ro`, `${src.id}:/ref:ro`].sort());
    expect((await product.http("DELETE", "/volumes/shared")).status).toBe(409);
    // One host mount and one loop device per volume, whatever the number of sandboxes.
    expect(mountedPaths().has(mntOf(shared.id))).toBe(true);
    expect(loopsOf(shared.id)).toHaveLength(1);
    expect(loopsOf(ref.id)).toHaveLength(1);

    // A cold cycle of the fork: its checkpoint is restored with the same binds.
    expect((await product.http("POST", `/sandboxes/${fork.id}/stop`)).status).toBe(200);
    await waitForSandbox(product, fork.id, (s) => s.thermal === "cold");
    await sh(product, src.id, "echo while-cold > /data/d");
    expect((await product.http("POST", `/sandboxes/${fork.id}/start`)).status).toBe(200);
    expect(await sh(product, fork.id, "cat /data/d /ref/hello")).toBe("while-cold\nreference\n");
    expect(await readTicker(product, fork.id)).toEqual(ticker);
  });

  it("--into makes the sandbox's mount set the snapshot's: its own volume is detached and released", {
    timeout: 300_000,
  }, async () => {
    const other = await createVolume("other", 16);
    const target = await createSandbox("target", [{ name: "other", mount: "/other" }]);
    await sh(product, target.id, "echo mine > /other/x");
    expect(mountedPaths().has(mntOf(other.id))).toBe(true);

    // The vmm refuses a sandbox of another size after the gateway swapped the attachments: the
    // sandbox's own are put back and it keeps running as it was.
    const smaller = await createSandbox("smaller", [{ name: "other", mount: "/other" }], { memory_mb: 512 });
    const refused = await product.http("POST", "/snapshots/withvol/resume", { body: { into: "smaller" } });
    expect(refused.status, refused.text).toBe(409);
    expect(refused.text).toContain("512 MiB");
    expect(await attachmentsOf("other")).toEqual(
      [`${smaller.id}:/other:rw`, `${target.id}:/other:rw`].sort(),
    );
    expect((await attachmentsOf("shared")).some((a) => a.startsWith(smaller.id))).toBe(false);
    expect((await attachmentsOf("ref")).some((a) => a.startsWith(smaller.id))).toBe(false);
    expect(await sh(product, smaller.id, "cat /other/x")).toBe("mine\n");
    await destroy(smaller.id);

    const r = await product.http("POST", "/snapshots/withvol/resume", { body: { into: "target" } });
    expect(r.status, r.text).toBe(200);
    expect(r.json<SandboxJson>()).toMatchObject({ id: target.id, name: "target", status: "running" });
    expect(await readTicker(product, target.id)).toEqual(ticker);
    expect(
      await sh(product, target.id, "cat /data/a /data/b /ref/hello; test ! -e /other/x && echo gone"),
    ).toBe("from-src\nfrom-fork\nreference\ngone\n");
    await sh(product, target.id, "echo from-target > /data/e");
    expect(await sh(product, src.id, "cat /data/e")).toBe("from-target\n");
    // The store agrees: "other" is free (and deletable), the snapshot's volumes are attached.
    expect(await attachmentsOf("other")).toEqual([]);
    expect(await attachmentsOf("shared")).toContain(`${target.id}:/data:rw`);
    expect(await attachmentsOf("ref")).toContain(`${target.id}:/ref:ro`);
    await waitReleased(other.id);
    expect((await product.http("DELETE", "/volumes/other")).status).toBe(200);
  });

  it("a missing volume refuses resume and rewind by name; nothing is made and the rewind target is untouched", {
    timeout: 300_000,
  }, async () => {
    // Every user of "ref" goes, then "ref" itself.
    for (const id of await sandboxIds()) await destroy(id);
    await waitReleased(ref.id);
    await waitReleased(shared.id);
    expect((await product.http("DELETE", "/volumes/ref")).status).toBe(200);

    const refused = await product.http("POST", "/snapshots/withvol/resume", { body: { name: "nope" } });
    expect(refused.status, refused.text).toBe(409);
    expect(refused.text).toContain("ref at /ref (ro)");
    expect(refused.text).not.toContain("shared");
    expect(await sandboxIds()).toEqual([]);
    expect(runscContainers()).toEqual([]);
    expect(sandboxDirs()).toEqual([]);
    expect(await attachmentsOf("shared")).toEqual([]);
    expect(mountedPaths().has(mntOf(shared.id))).toBe(false);

    // A rewind is refused before the sandbox is touched: same process, same attachments.
    const keeper = await createSandbox("keeper", [{ name: "shared", mount: "/keep" }]);
    const keeperTicker = await startTicker(product, keeper.id);
    const rewind = await product.http("POST", "/snapshots/withvol/resume", { body: { into: "keeper" } });
    expect(rewind.status, rewind.text).toBe(409);
    expect(rewind.text).toContain("ref at /ref (ro)");
    expect(await readTicker(product, keeper.id)).toEqual(keeperTicker);
    expect(await attachmentsOf("shared")).toEqual([`${keeper.id}:/keep:rw`]);
    expect(await sh(product, keeper.id, "cat /keep/a")).toBe("from-src\n");
    await destroy(keeper.id);

    // By name: a new (empty) volume called "ref" lets the snapshot resume.
    ref = await createVolume("ref", 16);
    const again = await product.http("POST", "/snapshots/withvol/resume", { body: { name: "fork2" } });
    expect(again.status, again.text).toBe(201);
    const fork2 = again.json<SandboxJson>();
    expect(await readTicker(product, fork2.id)).toEqual(ticker);
    expect(await sh(product, fork2.id, "ls -A /ref | grep -v lost+found; cat /data/a")).toBe("from-src\n");
    await destroy(fork2.id);
    await waitReleased(ref.id);
    await waitReleased(shared.id);
  });

  it("a resume the vmm fails (a volume image gone from the host) releases everything it took", {
    timeout: 300_000,
  }, async () => {
    // "ref" is the second volume: "shared" is mounted for the new sandbox when "ref" fails.
    const image = imageOf(ref.id);
    const aside = `${image}.aside`;
    renameSync(image, aside);
    let res: Awaited<ReturnType<Product["http"]>>;
    try {
      res = await product.http("POST", "/snapshots/withvol/resume", { body: { name: "broken" } });
    } finally {
      renameSync(aside, image);
    }
    expect(res.status, res.text).not.toBe(201);
    expect(res.text).toContain(ref.id);
    // The gateway's rollback names the sandbox it made: none of it is left.
    const line = product
      .output()
      .split("\n")
      .find((l) => l.includes("snapshot resume failed; rolling back"));
    const failedId = /"sandbox_id":"([0-9a-f]{16})"/.exec(line ?? "")?.[1];
    expect(failedId, line).toBeDefined();
    expect(await sandboxIds()).toEqual([]);
    expect(runscContainers()).toEqual([]);
    expect(sandboxDirs()).toEqual([]);
    expect(existsSync(`/run/netns/bt-${failedId}`)).toBe(false);
    expect(await attachmentsOf("shared")).toEqual([]);
    expect(await attachmentsOf("ref")).toEqual([]);
    await waitReleased(ref.id);
    await waitReleased(shared.id);
  });

  it("after the last sandbox no volume mount or loop device is left; the volumes delete", {
    timeout: 300_000,
  }, async () => {
    const res = await product.http("POST", "/snapshots/withvol/resume", { body: { name: "last" } });
    expect(res.status, res.text).toBe(201);
    const last = res.json<SandboxJson>();
    expect(await sh(product, last.id, "cat /data/c")).toBe("from-src-again\n");
    expect(loopsOf(shared.id)).toHaveLength(1);
    await destroy(last.id);
    await waitReleased(shared.id);
    await waitReleased(ref.id);
    expect((await product.http("DELETE", "/volumes/shared")).status).toBe(200);
    expect((await product.http("DELETE", "/volumes/ref")).status).toBe(200);
    expect(existsSync(imageOf(shared.id))).toBe(false);
    expect(loopDevicesBackedBy(volumesDir())).toEqual([]);
    expect(readdirSync(join(volumesDir(), "mnt"))).toEqual([]);
  });
});
