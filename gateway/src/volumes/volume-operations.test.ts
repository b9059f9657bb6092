import { StoreService, VmmVolumeService, type VolumeRecord } from "@bhatti/proto";
import { createLogger } from "@bhatti/runtime";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createVolumeOperations } from "./volume-operations.js";

const USER = "00000000000000aa";

/**
 * The order of the volume operations against in-memory store and vmm fakes: what is undone when
 * the vmm fails, and that refusals happen before anything on the host changes.
 */
function setup(options: { imageFails?: boolean; resizeFails?: boolean } = {}) {
  const calls: string[] = [];
  const rows = new Map<string, VolumeRecord>();
  const sandboxNames = new Map([["00000000000000c1", "web"]]);
  const transport = createRouterTransport((router) => {
    router.service(StoreService, {
      createVolume(req) {
        calls.push(`store.create ${req.name}`);
        const v = {
          id: "00000000000000b1",
          userId: req.userId,
          name: req.name,
          sizeMb: req.sizeMb,
          filePath: "",
          status: "creating",
          attachments: [],
        } as unknown as VolumeRecord;
        rows.set(v.id, v);
        return { volume: v };
      },
      getVolume(req) {
        const v = [...rows.values()].find((r) => r.id === req.volume || r.name === req.volume);
        if (!v) throw new ConnectError("volume not found", Code.NotFound);
        return { volume: v };
      },
      updateVolume(req) {
        const v = rows.get(req.volume) as VolumeRecord;
        calls.push(`store.update ${JSON.stringify({ status: req.status, sizeMb: req.sizeMb })}`);
        if (req.status !== undefined) v.status = req.status;
        if (req.sizeMb !== undefined) v.sizeMb = req.sizeMb;
        if (req.filePath !== undefined) v.filePath = req.filePath;
        return { volume: v };
      },
      deleteVolume(req) {
        calls.push(`store.delete ${req.volume}`);
        const v = rows.get(req.volume) as VolumeRecord;
        rows.delete(req.volume);
        return { volume: v };
      },
      getSandbox(req) {
        const name = sandboxNames.get(req.sandbox);
        if (!name) throw new ConnectError("no", Code.NotFound);
        return { sandbox: { id: req.sandbox, name } as never };
      },
    });
    router.service(VmmVolumeService, {
      createVolumeImage(req) {
        calls.push(`vmm.create ${req.volumeId}`);
        if (options.imageFails) throw new ConnectError("mkfs failed", Code.Internal);
        return { path: `/state/volumes/${req.userId}/${req.volumeId}.ext4` };
      },
      resizeVolumeImage(req) {
        calls.push(`vmm.resize ${req.sizeMb}`);
        if (options.resizeFails) throw new ConnectError("resize2fs failed", Code.Internal);
        return {};
      },
      deleteVolumeImage(req) {
        calls.push(`vmm.delete ${req.volumeId}`);
        return { existed: true };
      },
    });
  });
  const ops = createVolumeOperations({
    clients: {
      store: createClient(StoreService, transport),
      vmmVolumes: createClient(VmmVolumeService, transport),
    },
    limits: { minMb: 16, maxMb: 1024 },
    logger: createLogger({ service: "test", write: () => {} }),
  });
  return { ops, calls, rows };
}

describe("volume operations", () => {
  it("create: row, image, ready; a failed image removes the row again", async () => {
    const ok = setup();
    const v = await ok.ops.create(USER, "data", 64);
    expect(v).toMatchObject({ name: "data", sizeMb: 64, status: "ready" });
    expect(ok.calls).toEqual([
      "store.create data",
      "vmm.create 00000000000000b1",
      'store.update {"status":"ready"}',
    ]);
    const bad = setup({ imageFails: true });
    await expect(bad.ops.create(USER, "data", 64)).rejects.toThrow(/mkfs failed/);
    expect(bad.calls).toEqual([
      "store.create data",
      "vmm.create 00000000000000b1",
      "store.delete 00000000000000b1",
    ]);
    expect(bad.rows.size).toBe(0);
  });

  it("refuses bad names and sizes before asking anyone", async () => {
    const { ops, calls } = setup();
    for (const [name, size] of [
      ["-x", 64],
      ["data", 8],
      ["data", 2048],
      ["data", 16.5],
    ] as const) {
      await expect(ops.create(USER, name, size)).rejects.toSatisfy(
        (e) => ConnectError.from(e).code === Code.InvalidArgument,
      );
    }
    expect(calls).toEqual([]);
  });

  it("resize and delete while attached: FailedPrecondition naming the sandbox, nothing changed", async () => {
    const { ops, calls, rows } = setup();
    await ops.create(USER, "data", 64);
    (rows.get("00000000000000b1") as VolumeRecord).attachments = [
      { volumeId: "00000000000000b1", sandboxId: "00000000000000c1", mount: "/d", readOnly: false } as never,
    ];
    calls.length = 0;
    for (const op of [ops.resize(USER, "data", 128), ops.delete(USER, "data")]) {
      await expect(op).rejects.toSatisfy(
        (e) =>
          ConnectError.from(e).code === Code.FailedPrecondition && /web \(00000000000000c1\)/.test(String(e)),
      );
    }
    expect(calls).toEqual([]);
  });

  it("resize: locked as creating, grown, ready again even when the vmm fails; never shrinks", async () => {
    const ok = setup();
    await ok.ops.create(USER, "data", 64);
    await expect(ok.ops.resize(USER, "data", 32)).rejects.toSatisfy(
      (e) => ConnectError.from(e).code === Code.InvalidArgument,
    );
    ok.calls.length = 0;
    expect(await ok.ops.resize(USER, "data", 128)).toMatchObject({ sizeMb: 128, status: "ready" });
    expect(ok.calls).toEqual([
      'store.update {"status":"creating"}',
      'store.update {"sizeMb":128}',
      "vmm.resize 128",
      'store.update {"status":"ready"}',
    ]);
    const bad = setup({ resizeFails: true });
    await bad.ops.create(USER, "data", 64);
    await expect(bad.ops.resize(USER, "data", 128)).rejects.toThrow(/resize2fs failed/);
    expect(bad.rows.get("00000000000000b1")?.status).toBe("ready");
  });

  it("delete: the row first, then the image", async () => {
    const { ops, calls } = setup();
    await ops.create(USER, "data", 64);
    calls.length = 0;
    await ops.delete(USER, "data");
    expect(calls).toEqual(["store.delete 00000000000000b1", "vmm.delete 00000000000000b1"]);
  });
});
