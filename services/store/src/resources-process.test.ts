import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "./testing/store-process.js";

const errorOf = (p: Promise<unknown>): Promise<ConnectError | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
const codeOf = async (p: Promise<unknown>) => (await errorOf(p))?.code;

describe("store process: volumes, images, snapshots, publish rules, shell tokens, tasks", () => {
  let store: StoreProcess;
  let adminId: string;
  let alice: string;
  let bob: string;
  let bobBox: string;
  beforeAll(async () => {
    store = await startStoreProcess();
    const key = (parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>)[
      "auth_token"
    ];
    adminId = (await store.client.authenticateApiKey({ apiKey: key ?? "" })).user?.id ?? "";
    alice = (
      await store.client.createUser({
        actingUserId: adminId,
        name: "alice",
        limits: { maxVolumeStorageMb: 1000, maxSnapshots: 1, maxImages: 1 },
      })
    ).user?.id as string;
    bob = (await store.client.createUser({ actingUserId: adminId, name: "bob" })).user?.id as string;
    await store.client.createSandbox({ userId: alice, name: "a1" });
    await store.client.createSandbox({ userId: alice, name: "a2" });
    bobBox = (await store.client.createSandbox({ userId: bob, name: "b1" })).sandbox?.id as string;
  });
  afterAll(async () => {
    await store?.kill();
    if (store) removeTestDir(store.stateDir);
  });

  it("volumes: quota, grow-only, shared attachments, refusing delete while attached", async () => {
    const vol = (await store.client.createVolume({ userId: alice, name: "data", sizeMb: 600 })).volume;
    expect(vol).toMatchObject({ name: "data", status: "creating", sizeMb: 600 });
    expect(await codeOf(store.client.createVolume({ userId: alice, name: "more", sizeMb: 500 }))).toBe(
      Code.ResourceExhausted,
    );
    expect(await codeOf(store.client.createVolume({ userId: alice, name: "data", sizeMb: 1 }))).toBe(
      Code.AlreadyExists,
    );
    expect(
      await codeOf(
        store.client.attachVolume({ userId: alice, volume: "data", sandbox: "a1", mount: "/data" }),
      ),
    ).toBe(Code.FailedPrecondition); // still creating
    await store.client.updateVolume({ userId: alice, volume: "data", status: "ready" });
    expect(await codeOf(store.client.updateVolume({ userId: alice, volume: "data", sizeMb: 100 }))).toBe(
      Code.InvalidArgument,
    );
    expect(
      await codeOf(
        store.client.attachVolume({ userId: alice, volume: "data", sandbox: "a1", mount: "/etc" }),
      ),
    ).toBe(Code.InvalidArgument);
    await store.client.attachVolume({ userId: alice, volume: "data", sandbox: "a1", mount: "/data" });
    expect(
      await codeOf(
        store.client.attachVolume({ userId: alice, volume: "data", sandbox: "a1", mount: "/other" }),
      ),
    ).toBe(Code.AlreadyExists);
    expect(await codeOf(store.client.deleteVolume({ userId: alice, volume: "data" }))).toBe(
      Code.FailedPrecondition,
    );
    await store.client.detachVolume({ userId: alice, volume: "data", sandbox: "a1" });
    // Attachments share, read-write and read-only alike (one host mount serves them all).
    await store.client.attachVolume({ userId: alice, volume: "data", sandbox: "a1", mount: "/data" });
    const shared = await store.client.attachVolume({
      userId: alice,
      volume: "data",
      sandbox: "a2",
      mount: "/data",
      readOnly: true,
    });
    expect(shared.volume?.attachments).toHaveLength(2);
    // Destroying a sandbox drops its attachments.
    await store.client.deleteSandbox({ userId: alice, sandbox: "a2" });
    expect(
      (await store.client.getVolume({ userId: alice, volume: "data" })).volume?.attachments,
    ).toHaveLength(1);
    // Another user's sandbox cannot be a target, and it cannot see the volume.
    expect(
      await codeOf(
        store.client.attachVolume({ userId: alice, volume: "data", sandbox: bobBox, mount: "/x" }),
      ),
    ).toBe(Code.NotFound);
  });

  it("images: own, system and quota; snapshots: quota and uniqueness", async () => {
    await store.client.createImage({
      system: true,
      name: "minimal",
      source: "tier",
      filePath: "/images/minimal",
    });
    await store.client.createImage({ userId: alice, name: "mine", source: "saved" });
    expect(await codeOf(store.client.createImage({ userId: alice, name: "second", source: "saved" }))).toBe(
      Code.ResourceExhausted,
    );
    expect(
      await codeOf(store.client.createImage({ userId: alice, system: true, name: "x", source: "tier" })),
    ).toBe(Code.InvalidArgument);
    expect((await store.client.listImages({ userId: alice })).images.map((i) => i.name)).toEqual([
      "mine",
      "minimal",
    ]);
    expect((await store.client.getImage({ userId: bob, image: "minimal" })).image?.userId).toBe("");
    expect(await codeOf(store.client.deleteImage({ userId: bob, image: "minimal" }))).toBe(Code.NotFound);

    const snap = (await store.client.createSnapshot({ userId: alice, name: "s1", sourceSandboxId: "x" }))
      .snapshot;
    expect(snap?.id).toMatch(/^[0-9a-f]{16}$/);
    expect(await codeOf(store.client.createSnapshot({ userId: alice, name: "s2" }))).toBe(
      Code.ResourceExhausted,
    );
    expect(await codeOf(store.client.createSnapshot({ userId: bob, name: "bad name" }))).toBe(
      Code.InvalidArgument,
    );
    await store.client.createSnapshot({ userId: bob, name: "s1" });
    expect(await codeOf(store.client.createSnapshot({ userId: bob, name: "s1" }))).toBe(Code.AlreadyExists);
  });

  it("publish rules, shell tokens and tasks", async () => {
    const rule = (await store.client.createPublishRule({ userId: alice, sandbox: "a1", port: 3000 })).rule;
    expect(rule?.id).toMatch(/^pub_[0-9a-f]{16}$/);
    expect(rule?.alias).toMatch(/^a1-[0-9a-f]{6}$/);
    expect((await store.client.resolvePublishAlias({ alias: rule?.alias ?? "" })).rule?.port).toBe(3000);
    expect(await codeOf(store.client.createPublishRule({ userId: alice, sandbox: "a1", port: 3000 }))).toBe(
      Code.AlreadyExists,
    );
    expect(
      await codeOf(
        store.client.createPublishRule({ userId: alice, sandbox: "a1", port: 80, alias: "admin" }),
      ),
    ).toBe(Code.InvalidArgument);
    await store.client.createPublishRule({ userId: alice, sandbox: "a1", port: 80, alias: "my-site" });
    expect(
      await codeOf(
        store.client.createPublishRule({ userId: bob, sandbox: "b1", port: 80, alias: "my-site" }),
      ),
    ).toBe(Code.AlreadyExists);
    await store.client.deletePublishRule({ userId: alice, sandbox: "a1", port: 80 });
    expect(await codeOf(store.client.resolvePublishAlias({ alias: "my-site" }))).toBe(Code.NotFound);

    const { token, sandboxId } = await store.client.createShellToken({ userId: alice, sandbox: "a1" });
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect((await store.client.verifyShellToken({ sandboxId, token })).userId).toBe(alice);
    expect(await codeOf(store.client.verifyShellToken({ sandboxId, token: "0".repeat(64) }))).toBe(
      Code.Unauthenticated,
    );
    await store.client.createShellToken({ userId: alice, sandbox: "a1" }); // replaces the first
    expect(await codeOf(store.client.verifyShellToken({ sandboxId, token }))).toBe(Code.Unauthenticated);
    expect((await store.client.revokeShellToken({ userId: alice, sandbox: "a1" })).revoked).toBe(true);

    const task = (await store.client.createTask({ userId: alice, type: "image_pull" })).task;
    expect(task?.status).toBe("running");
    await store.client.updateTask({ userId: alice, taskId: task?.id ?? "", progress: "50%" });
    const done = await store.client.updateTask({
      userId: alice,
      taskId: task?.id ?? "",
      status: "completed",
      resultJson: '{"image":"x"}',
    });
    expect(done.task?.completedAt).toBeDefined();
    expect(
      await codeOf(store.client.updateTask({ userId: alice, taskId: task?.id ?? "", status: "failed" })),
    ).toBe(Code.FailedPrecondition);
  });

  it("every resource kind of one user is NotFound for another", async () => {
    const bobVol = (await store.client.createVolume({ userId: bob, name: "bobvol", sizeMb: 10 })).volume;
    const bobImg = (await store.client.createImage({ userId: bob, name: "bobimg", source: "saved" })).image;
    const bobSnap = (await store.client.getSnapshot({ userId: bob, snapshot: "s1" })).snapshot;
    const bobTask = (await store.client.createTask({ userId: bob, type: "image_pull" })).task;
    await store.client.createPublishRule({ userId: bob, sandbox: "b1", port: 8080, alias: "bobs" });
    for (const ref of ["bobvol", bobVol?.id ?? ""]) {
      expect(await codeOf(store.client.getVolume({ userId: alice, volume: ref }))).toBe(Code.NotFound);
      expect(await codeOf(store.client.deleteVolume({ userId: alice, volume: ref }))).toBe(Code.NotFound);
      expect(await codeOf(store.client.updateVolume({ userId: alice, volume: ref, sizeMb: 20 }))).toBe(
        Code.NotFound,
      );
    }
    expect((await store.client.listVolumes({ userId: alice })).volumes.map((v) => v.name)).toEqual(["data"]);
    for (const ref of ["bobimg", bobImg?.id ?? ""]) {
      expect(await codeOf(store.client.getImage({ userId: alice, image: ref }))).toBe(Code.NotFound);
      expect(await codeOf(store.client.deleteImage({ userId: alice, image: ref }))).toBe(Code.NotFound);
    }
    expect((await store.client.listImages({ userId: alice })).images.map((i) => i.name)).not.toContain(
      "bobimg",
    );
    expect(await codeOf(store.client.getSnapshot({ userId: alice, snapshot: bobSnap?.id ?? "" }))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(store.client.deleteSnapshot({ userId: alice, snapshot: bobSnap?.id ?? "" }))).toBe(
      Code.NotFound,
    );
    expect((await store.client.listSnapshots({ userId: alice })).snapshots.map((s) => s.userId)).toEqual([
      alice,
    ]);
    expect(await codeOf(store.client.getTask({ userId: alice, taskId: bobTask?.id ?? "" }))).toBe(
      Code.NotFound,
    );
    expect(
      await codeOf(store.client.updateTask({ userId: alice, taskId: bobTask?.id ?? "", progress: "x" })),
    ).toBe(Code.NotFound);
    expect((await store.client.listTasks({ userId: alice })).tasks.every((t) => t.userId === alice)).toBe(
      true,
    );
    expect((await store.client.listPublishRules({ userId: alice })).rules.map((r) => r.alias)).not.toContain(
      "bobs",
    );
    expect(await codeOf(store.client.listPublishRules({ userId: alice, sandbox: "b1" }))).toBe(Code.NotFound);
    expect(await codeOf(store.client.deletePublishRule({ userId: alice, sandbox: bobBox, port: 8080 }))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(store.client.createShellToken({ userId: alice, sandbox: bobBox }))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(store.client.revokeShellToken({ userId: alice, sandbox: "b1" }))).toBe(Code.NotFound);
    // Deleting a user that still owns things is refused, naming what is left.
    const refused = await errorOf(store.client.deleteUser({ actingUserId: adminId, user: "bob" }));
    expect(refused?.code).toBe(Code.FailedPrecondition);
    expect(refused?.rawMessage).toMatch(/1 sandboxes.*1 volumes.*1 images.*1 snapshots/);
  });
});
