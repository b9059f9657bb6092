import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loopDevicesBackedBy } from "../adapters/loop-disk.js";
import { isMounted } from "../adapters/rootfs.js";
import { isEngineError } from "../engine/engine-error.js";
import { type VolumeHost, createVolumeHost } from "./volume-host.js";

const USER = "00000000000000aa";
const VOL = "00000000000000b1";
const root = process.getuid?.() === 0;

/** The real host side (mkfs.ext4, loop mounts, resize2fs) on a temp state dir; needs root. */
describe.skipIf(!root)("VolumeHost (real images and loop mounts)", () => {
  let stateDir: string;
  let host: VolumeHost;

  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), "bhatti-test-volhost-"));
    host = createVolumeHost({ stateDir });
  });

  afterEach(() => {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const m = line.split(" ")[4];
      if (m?.startsWith(stateDir)) execFileSync("umount", ["-l", m], { stdio: "ignore" });
    }
    rmSync(stateDir, { recursive: true, force: true });
  });

  const waitLoopFreed = async (image: string) => {
    const deadline = Date.now() + 30_000;
    while (loopDevicesBackedBy(image, true).length > 0) {
      if (Date.now() > deadline) throw new Error(`loop device of ${image} never freed`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it("creates a sparse image owned 1000:1000 at its root; refcounts the mount across holders", async () => {
    const image = await host.createImage(USER, VOL, 32);
    expect(image).toBe(join(stateDir, "volumes", USER, `${VOL}.ext4`));
    expect(statSync(image).size).toBe(32 * 1024 * 1024);
    // Sparse: far less allocated than its size.
    expect(statSync(image).blocks * 512).toBeLessThan(8 * 1024 * 1024);
    const spec = [{ volumeId: VOL, name: "v", mount: "/data", readOnly: false }];
    await host.acquire({ id: "1111111111111111", userId: USER, volumes: spec });
    await host.acquire({ id: "2222222222222222", userId: USER, volumes: spec });
    const mnt = host.mountPath(VOL);
    expect(isMounted(mnt)).toBe(true);
    expect(statSync(mnt).uid).toBe(1000);
    expect(statSync(mnt).gid).toBe(1000);
    expect(host.holders(VOL).sort()).toEqual(["1111111111111111", "2222222222222222"]);
    await expect(host.growImage(USER, VOL, 64)).rejects.toSatisfy(
      (e) => isEngineError(e) && e.code === "failed_precondition",
    );
    await expect(host.deleteImage(USER, VOL)).rejects.toSatisfy(
      (e) => isEngineError(e) && e.code === "failed_precondition",
    );
    await host.release("1111111111111111");
    expect(isMounted(mnt)).toBe(true);
    writeFileSync(join(mnt, "f"), "x");
    await host.release("2222222222222222");
    expect(isMounted(mnt)).toBe(false);
    await waitLoopFreed(image);
    // Releasing what is not held is a no-op.
    await host.release("2222222222222222");
  });

  it("grows offline and keeps the data; refuses to shrink; delete removes the file", async () => {
    const image = await host.createImage(USER, VOL, 16);
    const spec = [{ volumeId: VOL, name: "v", mount: "/data", readOnly: false }];
    await host.acquire({ id: "1111111111111111", userId: USER, volumes: spec });
    writeFileSync(join(host.mountPath(VOL), "kept"), "data");
    await host.release("1111111111111111");
    await waitLoopFreed(image);
    await host.growImage(USER, VOL, 48);
    await host.growImage(USER, VOL, 48); // idempotent
    expect(statSync(image).size).toBe(48 * 1024 * 1024);
    await expect(host.growImage(USER, VOL, 16)).rejects.toThrow(/only grow/);
    await host.acquire({ id: "1111111111111111", userId: USER, volumes: spec });
    const mnt = host.mountPath(VOL);
    expect(readFileSync(join(mnt, "kept"), "utf8")).toBe("data");
    const s = execFileSync("df", ["-m", "--output=size", mnt], { encoding: "utf8" }).trim().split("\n")[1];
    expect(Number(s)).toBeGreaterThan(40);
    await host.release("1111111111111111");
    await waitLoopFreed(image);
    expect(await host.deleteImage(USER, VOL)).toBe(true);
    expect(existsSync(image)).toBe(false);
    expect(await host.deleteImage(USER, VOL)).toBe(false);
  });

  it("adopt: rebuilds holds from running sandboxes and unmounts volumes nobody holds", async () => {
    const other = "00000000000000b2";
    await host.createImage(USER, VOL, 16);
    await host.createImage(USER, other, 16);
    const specOf = (id: string) => [{ volumeId: id, name: id, mount: `/${id}`, readOnly: false }];
    await host.acquire({ id: "1111111111111111", userId: USER, volumes: specOf(VOL) });
    await host.acquire({ id: "2222222222222222", userId: USER, volumes: specOf(other) });
    // A restarted vmm: a fresh host over the same state, where only sandbox 1 still runs.
    const restarted = createVolumeHost({ stateDir });
    await restarted.adopt([{ id: "1111111111111111", userId: USER, volumes: specOf(VOL) }]);
    expect(isMounted(restarted.mountPath(VOL))).toBe(true);
    expect(isMounted(restarted.mountPath(other))).toBe(false);
    expect(restarted.holders(VOL)).toEqual(["1111111111111111"]);
    await restarted.release("1111111111111111");
    expect(isMounted(restarted.mountPath(VOL))).toBe(false);
  });

  it("refuses bad ids, sizes and a second image with the same id", async () => {
    for (const [user, vol, size] of [
      ["../etc", VOL, 16],
      [USER, "../../x", 16],
      [USER, VOL, 4],
      [USER, VOL, 1.5],
    ] as const) {
      await expect(host.createImage(user, vol, size)).rejects.toSatisfy(
        (e) => isEngineError(e) && e.code === "invalid_argument",
      );
    }
    await host.createImage(USER, VOL, 16);
    await expect(host.createImage(USER, VOL, 16)).rejects.toSatisfy(
      (e) => isEngineError(e) && e.code === "already_exists",
    );
    await expect(
      host.acquire({
        id: "1111111111111111",
        userId: USER,
        volumes: [{ volumeId: "00000000000000cc", name: "gone", mount: "/x", readOnly: false }],
      }),
    ).rejects.toSatisfy((e) => isEngineError(e) && e.code === "not_found");
    await host.release("1111111111111111");
  });
});
