import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createImageRegistry } from "../../adapters/image-registry.js";
import type { Skopeo } from "../adapters/skopeo.js";
import { ToolError } from "../adapters/tool-process.js";
import type { Umoci } from "../adapters/umoci.js";
import { type ImageService, createImageService } from "./image-service.js";
import { TaskFailure, createImageTaskBoard } from "./image-tasks.js";

const ALICE = { userId: "u-alice", admin: false, maxImages: 0 };
const pullReq = (ref: string, name: string) => ({ ref, name, auth: "", platform: "", insecure: false });

/** The service's own rules with stand-ins for skopeo and umoci (the real ones: test/images). */
describe("image service: queueing and disk space", () => {
  let dir: string;
  let gates: Map<string, { open: () => void; fail: (e: Error) => void }>;
  let inspecting: string[];
  const tasks = () =>
    createImageTaskBoard({ describe: (e) => (e instanceof TaskFailure ? e.message : "internal error") });

  const skopeo: Skopeo = {
    inspect: (src) =>
      new Promise((resolve, reject) => {
        const ref = src.ref;
        inspecting.push(ref);
        gates.set(ref, {
          open: () => resolve({ digest: `sha256:${"1".repeat(64)}`, layers: 1 }),
          fail: reject,
        });
      }),
    async copy(_src, layout) {
      mkdirSync(join(layout, "blobs"), { recursive: true });
      writeFileSync(join(layout, "blobs", "layer"), Buffer.alloc(64 * 1024));
    },
  };
  const umoci: Umoci = { unpack: async () => undefined };

  const service = (
    overrides: Partial<Parameters<typeof createImageService>[0]> = {},
  ): { svc: ImageService; board: ReturnType<typeof tasks> } => {
    const board = tasks();
    const svc = createImageService({
      registry: createImageRegistry(join(dir, "images")),
      tasks: board,
      skopeo,
      umoci,
      sandboxes: { withFrozenRootfs: () => Promise.reject(new Error("unused")), imagesInUse: () => [] },
      taskTimeoutMs: 60_000,
      ...overrides,
    });
    svc.recover();
    return { svc, board };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-imgsvc-"));
    mkdirSync(join(dir, "images"));
    gates = new Map();
    inspecting = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise((r) => setTimeout(r, 5));
  };

  it("runs at most maxConcurrent tasks; the next one starts when one ends", async () => {
    const { svc, board } = service({ maxConcurrent: 1 });
    const a = svc.pull(ALICE, pullReq("127.0.0.1:1/a:1", "a"));
    const b = svc.pull(ALICE, pullReq("127.0.0.1:1/b:1", "b"));
    await until(() => inspecting.length === 1);
    expect(board.get(b.id)).toMatchObject({ state: "running", phase: "queued" });
    gates.get("127.0.0.1:1/a:1")?.fail(new ToolError("skopeo", 1, "manifest unknown"));
    expect(await board.settled(a.id)).toMatchObject({
      state: "failed",
      error: "image 127.0.0.1:1/a:1 not found in the registry",
    });
    await until(() => inspecting.length === 2);
    expect(inspecting[1]).toBe("127.0.0.1:1/b:1");
    gates.get("127.0.0.1:1/b:1")?.fail(new ToolError("skopeo", 1, "boom"));
    expect((await board.settled(b.id)).state).toBe("failed");
  });

  it("a pull that would eat into the disk reserve fails before unpacking and leaves nothing", async () => {
    const { svc, board } = service({ freeBytes: () => 1024 * 1024, diskReserveBytes: 1024 * 1024 });
    const t = svc.pull(ALICE, pullReq("127.0.0.1:1/a:1", "a"));
    await until(() => gates.has("127.0.0.1:1/a:1"));
    gates.get("127.0.0.1:1/a:1")?.open();
    const done = await board.settled(t.id);
    expect(done.state).toBe("failed");
    expect(done.error).toMatch(
      /^not enough disk space for unpacking 127.0.0.1:1\/a:1: 1 MB free, about 1 MB needed/,
    );
    expect(readdirSync(join(dir, "images"))).toEqual([".tmp"]);
    expect(readdirSync(join(dir, "images", ".tmp"))).toEqual([]);
  });
});
