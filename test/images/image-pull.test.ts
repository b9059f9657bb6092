import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GvisorEngine, createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { type EngineImages, type ImageCaller, createEngineImages } from "@bhatti/service-vmm/images";
import { testSpec } from "../engine-conformance/engine-factory.js";
import {
  type GvisorTestEnv,
  createGvisorTestEnv,
  gvisorFactory,
} from "../engine-conformance/gvisor-factory.js";
import { type TestRegistry, startRegistry } from "./registry-fixture.js";
import { buildTestImages, dockerArchive, lastLayerDigest, ociArchive, push } from "./test-images.js";

const ALICE: ImageCaller = { userId: "u-alice", admin: false, maxImages: 0 };
const BOB: ImageCaller = { userId: "u-bob", admin: false, maxImages: 0 };
const ADMIN: ImageCaller = { userId: "u-admin", admin: true, maxImages: 0 };

/**
 * Image pull, import and save against a hermetic registry (Debian docker-registry on 127.0.0.1)
 * and test images built with umoci, with the real skopeo, umoci and runsc: the images boot and
 * the config they carry reaches execs.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("images: pull, import, save", () => {
  let env: GvisorTestEnv;
  let engine: GvisorEngine;
  let images: EngineImages;
  let reg: TestRegistry;
  let authReg: TestRegistry;
  let work: string;
  let lay: string;

  const settle = (id: string) => images.tasks.settled(id);
  const imagesDir = () => join(env.stateDir, "images");
  const tmpLeft = () => readdirSync(join(imagesDir(), ".tmp"));
  const rootfsOf = (name: string) => join(imagesDir(), name, "rootfs");
  const pull = (
    ref: string,
    name: string,
    extra: Partial<{ auth: string; platform: string }> = {},
    who = ALICE,
  ) => images.service.pull(who, { ref, name, auth: "", platform: "", insecure: false, ...extra });
  const exec = async (id: string, argv: string[], root = false) => {
    const c = await engine.agentClient(id);
    try {
      const r = await c.exec(argv, { timeoutMs: 30_000, root });
      return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
    } finally {
      c.close();
    }
  };

  beforeAll(async () => {
    env = await createGvisorTestEnv();
    engine = createGvisorEngine(env.options);
    await engine.adopt();
    images = createEngineImages(engine, { taskTimeoutMs: 120_000 });
    work = mkdtempSync(join(tmpdir(), "bhatti-test-images-"));
    lay = buildTestImages(work);
    reg = await startRegistry();
    authReg = await startRegistry({ auth: { user: "tester", password: "s3cret" } });
    push(lay, "multi", `${reg.host}/bt/busybox:multi`);
    push(lay, "v1", `${reg.host}/bt/zstd:v1`, { zstd: true });
    push(lay, "nosh", `${reg.host}/bt/nosh:v1`);
    push(lay, "tamper", `${reg.host}/bt/tamper:v1`);
    push(lay, "v1", `${authReg.host}/bt/private:v1`, { creds: "tester:s3cret" });
  }, 120_000);

  afterAll(async () => {
    try {
      for (const s of engine?.list() ?? []) await engine.destroy(s.id).catch(() => undefined);
      await engine?.close();
    } finally {
      await reg?.stop();
      await authReg?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
      await env?.teardown();
    }
  });

  it("pulls the host platform from an index: whiteouts, owners, config; a sandbox boots with its Env and WorkingDir", async () => {
    const t = await settle(pull(`${reg.host}/bt/busybox:multi`, "bb").id);
    expect(t).toMatchObject({
      state: "completed",
      result: "pulled",
      layersTotal: 3,
      layersDone: 3,
      error: "",
    });
    expect(t.digest).toMatch(/^sha256:/);
    const root = rootfsOf("bb");
    expect(readFileSync(join(root, "etc/arch"), "utf8")).toBe("amd64\n");
    expect(existsSync(join(root, "etc/deleteme"))).toBe(false);
    expect(readFileSync(join(root, "etc/keepme"), "utf8")).toBe("kept\n");
    expect(readdirSync(join(root, "etc/opq"))).toEqual(["c"]);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^lohar:x:1000:1000:/m);
    expect(statSync(join(root, "workspace")).uid).toBe(1000);
    const meta = JSON.parse(readFileSync(join(imagesDir(), "bb", "image.json"), "utf8"));
    expect(meta).toMatchObject({
      owner: "u-alice",
      source: `oci:${reg.host}/bt/busybox:multi`,
      user: "lohar",
      config: { env: ["FOO=bar", "PATH=/bin"], working_dir: "/srv/app", cmd: ["/bin/sh"], user: "1000" },
    });
    expect(tmpLeft()).toEqual([]);

    const sb = await engine.create(testSpec("bb", { userId: "u-alice", env: { MINE: "1" }, diskSizeMb: 64 }));
    const r = await exec(sb.id, ["sh", "-c", 'echo "$FOO $MINE $(pwd) $(id -u)"']);
    expect(r).toMatchObject({ code: 0, out: "bar 1 /srv/app 1000\n" });
    await engine.destroy(sb.id);
  });

  it("a repeat pull of the same digest is a no-op; --platform picks the arm64 image", async () => {
    const before = statSync(join(imagesDir(), "bb", "image.json")).mtimeMs;
    const again = await settle(pull(`${reg.host}/bt/busybox:multi`, "bb").id);
    expect(again).toMatchObject({ state: "completed", result: "exists" });
    expect(statSync(join(imagesDir(), "bb", "image.json")).mtimeMs).toBe(before);

    const arm = await settle(pull(`${reg.host}/bt/busybox:multi`, "bb-arm", { platform: "linux/arm64" }).id);
    expect(arm.state).toBe("completed");
    expect(readFileSync(join(rootfsOf("bb-arm"), "etc/arch"), "utf8")).toBe("arm64\n");
  });

  it("a zstd layer is pulled (recompressed for umoci)", async () => {
    const t = await settle(pull(`${reg.host}/bt/zstd:v1`, "zs").id);
    expect(t.error).toBe("");
    expect(readFileSync(join(rootfsOf("zs"), "etc/keepme"), "utf8")).toBe("kept\n");
  });

  it("an image without /bin/sh boots and runs its own binary", async () => {
    const t = await settle(pull(`${reg.host}/bt/nosh:v1`, "nosh").id);
    expect(t.state).toBe("completed");
    expect(existsSync(join(rootfsOf("nosh"), "bin/sh"))).toBe(false);
    const sb = await engine.create(testSpec("nosh", { userId: "u-alice", diskSizeMb: 64 }));
    const r = await exec(sb.id, ["/bin/busybox", "echo", "no shell here"]);
    expect(r).toMatchObject({ code: 0, out: "no shell here\n" });
    await engine.destroy(sb.id);
  });

  it("a tampered blob fails the pull and leaves nothing behind", async () => {
    // Flip one byte of the image's own layer blob in the registry's storage.
    const hex = lastLayerDigest(lay, "tamper").replace("sha256:", "");
    const layer = join(reg.storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const bytes = readFileSync(layer);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    writeFileSync(layer, bytes);
    const t = await settle(pull(`${reg.host}/bt/tamper:v1`, "tampered").id);
    expect(t.state).toBe("failed");
    expect(t.error).toMatch(/did not match its digest/);
    expect(existsSync(join(imagesDir(), "tampered"))).toBe(false);
    expect(tmpLeft()).toEqual([]);
  });

  it("wrong or missing credentials give a clear error; the right ones pull", async () => {
    const ref = `${authReg.host}/bt/private:v1`;
    const none = await settle(pull(ref, "priv").id);
    expect(none).toMatchObject({ state: "failed" });
    expect(none.error).toMatch(/requires credentials .*401/);
    const wrong = await settle(pull(ref, "priv", { auth: "tester:nope" }).id);
    expect(wrong.error).toMatch(/refused the credentials .*401/);
    expect(wrong.error).not.toMatch(/time=|level=/);
    const ok = await settle(pull(ref, "priv", { auth: "tester:s3cret" }).id);
    expect(ok).toMatchObject({ state: "completed", error: "" });
  });

  it("concurrent pulls: the same image is one task; different images both complete", async () => {
    const a = pull(`${reg.host}/bt/busybox:multi`, "same");
    const b = pull(`${reg.host}/bt/busybox:multi`, "same");
    expect(b.id).toBe(a.id);
    const c = pull(`${reg.host}/bt/zstd:v1`, "other");
    const [ta, tc] = await Promise.all([settle(a.id), settle(c.id)]);
    expect([ta.state, tc.state]).toEqual(["completed", "completed"]);
    expect(existsSync(join(rootfsOf("same"), "etc/arch"))).toBe(true);
    expect(existsSync(join(rootfsOf("other"), "etc/keepme"))).toBe(true);
    expect(tmpLeft()).toEqual([]);
  });

  it("ownership: another user neither sees nor replaces an image until it is shared; max_images", async () => {
    expect(images.service.list("u-bob").map((i) => i.name)).not.toContain("bb");
    expect(() => pull(`${reg.host}/bt/zstd:v1`, "bb", {}, BOB)).toThrow(/already exists/);
    expect(images.service.share(ALICE, "bb", "u-bob", false)).toEqual(["u-bob"]);
    expect(images.service.list("u-bob").map((i) => i.name)).toContain("bb");
    expect(() => images.service.remove(BOB, "bb")).toThrow(/not yours/);
    const limited: ImageCaller = { ...BOB, maxImages: 1 };
    expect((await settle(pull(`${reg.host}/bt/zstd:v1`, "bob1", {}, limited).id)).state).toBe("completed");
    expect(() => pull(`${reg.host}/bt/zstd:v1`, "bob2", {}, limited)).toThrow(/image limit reached \(1\/1\)/);
  });

  it("import: a docker-archive and an oci-archive tarball (detected), admins only", async () => {
    const docker = join(work, "bb-docker.tar");
    const oci = join(work, "bb-oci.tar");
    dockerArchive(lay, "v2", docker, "bt/busybox:v2");
    ociArchive(lay, "v2", oci);
    expect(() => images.service.importTar(ALICE, docker, "imp")).toThrow(/admin/);
    for (const [path, name] of [
      [docker, "imp-docker"],
      [oci, "imp-oci"],
    ] as const) {
      const t = await settle(images.service.importTar(ADMIN, path, name).id);
      expect(t).toMatchObject({ state: "completed", error: "" });
      expect(readdirSync(join(rootfsOf(name), "etc/opq"))).toEqual(["c"]);
      const meta = JSON.parse(readFileSync(join(imagesDir(), name, "image.json"), "utf8"));
      expect(meta.config).toMatchObject({ env: ["FOO=bar", "PATH=/bin"], working_dir: "/srv/app" });
    }
    const bad = join(work, "not-a-tar");
    writeFileSync(bad, "hello");
    const t = await settle(images.service.importTar(ADMIN, bad, "bad").id);
    expect(t.state).toBe("failed");
    expect(existsSync(join(imagesDir(), "bad"))).toBe(false);
  });

  it("save: a running sandbox's new file and deleted base file carry over; it keeps running (same pid)", async () => {
    const sb = await engine.create(testSpec("bb", { userId: "u-alice", diskSizeMb: 64 }));
    try {
      const changed = await exec(
        sb.id,
        ["sh", "-c", "echo saved > /workspace/new.txt && rm /etc/keepme && echo data > /srv/app/x"],
        true,
      );
      expect(changed).toMatchObject({ code: 0, err: "" });
      const bg = await engine.agentClient(sb.id);
      let pid: string;
      try {
        await bg.execDetached(["sh", "-c", "echo $$ > /tmp/pid; exec sleep 1000"], {});
        pid = "";
        for (let i = 0; i < 100 && pid === ""; i++) {
          pid = (await bg.exec(["cat", "/tmp/pid"])).stdout.toString().trim();
          if (pid === "") await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        bg.close();
      }
      expect(pid).toMatch(/^\d+$/);
      expect(() => images.service.save(BOB, sb.id, "bob-steals")).not.toThrow();
      const stolen = await settle(images.service.save(BOB, sb.id, "bob-steal2").id);
      expect(stolen.error).toMatch(/not found/);

      const t = await settle(images.service.save(ALICE, sb.id, "bb-saved").id);
      expect(t).toMatchObject({ state: "completed", error: "" });
      // Still running, same process, not frozen.
      expect(engine.status(sb.id)?.thermal).toBe("hot");
      expect((await exec(sb.id, ["sh", "-c", `kill -0 ${pid} && echo alive`])).out).toBe("alive\n");

      const meta = JSON.parse(readFileSync(join(imagesDir(), "bb-saved", "image.json"), "utf8"));
      expect(meta).toMatchObject({
        source: `saved:${sb.id}`,
        owner: "u-alice",
        config: { working_dir: "/srv/app" },
      });
      const copy = await engine.create(testSpec("bb-saved", { userId: "u-alice", diskSizeMb: 64 }));
      const r = await exec(copy.id, [
        "sh",
        "-c",
        "cat /workspace/new.txt /srv/app/x; test -e /etc/keepme && echo BAD; cat /etc/deleteme 2>/dev/null || echo gone",
      ]);
      expect(r.out).toBe("saved\ndata\ngone\n");
      await engine.destroy(copy.id);
    } finally {
      await engine.destroy(sb.id);
    }
  });

  it("delete is refused while a sandbox uses the image, allowed after", async () => {
    const sb = await engine.create(testSpec("zs", { userId: "u-alice", diskSizeMb: 64 }));
    expect(() => images.service.remove(ALICE, "zs")).toThrow(/used by 1 sandbox/);
    await engine.destroy(sb.id);
    images.service.remove(ALICE, "zs");
    expect(existsSync(join(imagesDir(), "zs"))).toBe(false);
    expect(engine.images.get("zs")).toBeUndefined();
  });
});
