import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, exec, startProduct } from "../thermal/product-harness.js";
import { type TestRegistry, startRegistry } from "./registry-fixture.js";
import { buildTestImages, dockerArchive, push } from "./test-images.js";

interface TaskJson {
  id: string;
  type: string;
  status: string;
  phase: string;
  progress: { bytes: number; layers_done: number; layers_total: number };
  error: string;
  image: string;
  result: string;
}

/**
 * The whole product (bhatti serve) with a registry in its network namespace: `bhatti image pull`
 * through the CLI and REST, tasks, `create --image`, save and delete, and a vmm SIGKILLed in the
 * middle of a pull (crash points, each fired once) leaving no half image after its restart.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("images through the product", () => {
  let product: Product;
  let reg: TestRegistry;
  let work: string;
  let ref: string;
  let lay: string;

  const imagesDir = () => join(product.env.stateDir, "images");
  const vmmPid = () => product.childPid("services/vmm/dist");
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-images-"));
    const once = join(work, "crash-once");
    mkdirSync(once);
    product = await startProduct({
      flags: ["--image-upload-max-mb=8"],
      env: { BHATTI_CRASH_AT: "vmm.image.after-copy,vmm.image.before-publish", BHATTI_CRASH_ONCE_DIR: once },
    });
    lay = buildTestImages(work);
    reg = await startRegistry({ netnsPath: product.env.hostNetnsPath });
    ref = `${reg.host}/bt/busybox:multi`;
    push(lay, "multi", ref, { netnsPath: product.env.hostNetnsPath });
  }, 240_000);

  afterAll(async () => {
    try {
      await product?.dispose();
    } finally {
      await reg?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });

  it("a vmm killed during a pull (after the copy, before the publish) leaves no half image", async () => {
    for (const point of ["after-copy", "before-publish"]) {
      const before = vmmPid();
      expect(before).toBeDefined();
      const res = await product.http("POST", "/images/pull", { body: { ref, name: "crashed" } });
      expect(res.status).toBe(202);
      const task = res.json<TaskJson>();
      // The supervisor restarts the killed vmm; tasks lived in its memory.
      for (;;) {
        const now = vmmPid();
        if (now !== undefined && now !== before) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      let status = 0;
      for (;;) {
        status = (await product.http("GET", `/tasks/${task.id}`)).status;
        if (status === 404) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(product.output()).toContain(`crash point vmm.image.${point}`);
      expect(existsSync(join(imagesDir(), "crashed"))).toBe(false);
      expect(readdirSync(join(imagesDir(), ".tmp"))).toEqual([]);
      const list = await product.http("GET", "/images");
      expect(list.json<{ name: string }[]>().map((i) => i.name)).not.toContain("crashed");
    }
  }, 180_000);

  it("bhatti image pull waits with progress lines; a repeat is a no-op; GET /tasks/:id", async () => {
    const first = await product.cli(["image", "pull", ref, "--name", "bb"]);
    // Plain lines off a TTY: one per change of phase or progress, ending with the layer count.
    const lines = first.stderr.trimEnd().split("\n");
    for (const l of lines)
      expect(l).toMatch(/^pull bb: (queued|resolving|copying|unpacking|injecting|publishing|done)/);
    expect(lines.at(-1)).toMatch(/^pull bb: done 3\/3 layers [\d.]+ MB$/);
    expect(first).toMatchObject({ code: 0, stdout: "image bb ready\n" });
    const again = await product.cli(["image", "pull", ref, "--name", "bb", "--json"]);
    expect(again.code).toBe(0);
    const t = JSON.parse(again.stdout) as TaskJson;
    expect(t).toMatchObject({ type: "image_pull", status: "completed", result: "exists", image: "bb" });
    const viaRest = await product.http("GET", `/tasks/${t.id}`);
    // `--json` prints exactly the REST body (both go through @bhatti/proto/rest-json).
    expect(viaRest.json<TaskJson>()).toEqual(t);
    expect((await product.http("GET", "/tasks/0123456789abcdef")).status).toBe(404);
    const bad = await product.http("POST", "/images/pull", { body: { ref: "not a ref" } });
    expect(bad.status).toBe(400);
    const wrongRegistry = await product.cli([
      "image",
      "pull",
      `${reg.host}/bt/missing:v1`,
      "--name",
      "missing",
    ]);
    expect(wrongRegistry.code).not.toBe(0);
    expect(wrongRegistry.stderr).toMatch(/not found in the registry/);
  }, 120_000);

  it("create --image uses the image's Env and WorkingDir; save keeps the sandbox; delete refused while in use", async () => {
    const created = await product.cli(["create", "--image", "bb", "--name", "from-bb", "--json"]);
    expect(created.code).toBe(0);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    const r = await exec(product, id, ["sh", "-c", 'echo "$FOO $(pwd)"; echo new > /workspace/f']);
    expect(r.body).toMatchObject({ exit_code: 0, stdout: "bar /srv/app\n" });

    const saved = await product.cli(["image", "save", "from-bb", "bb-saved"]);
    expect(saved).toMatchObject({ code: 0, stdout: "image bb-saved ready\n" });
    expect((await exec(product, id, ["cat", "/workspace/f"])).body.stdout).toBe("new\n");

    const refused = await product.http("DELETE", "/images/bb");
    expect(refused.status).toBe(409);
    expect(refused.text).toMatch(/used by 1 sandbox/);

    const copy = await product.cli(["create", "--image", "bb-saved", "--name", "from-saved", "--json"]);
    expect(copy.code).toBe(0);
    const copyId = (JSON.parse(copy.stdout) as { id: string }).id;
    expect((await exec(product, copyId, ["cat", "/workspace/f"])).body.stdout).toBe("new\n");

    for (const sb of [id, copyId])
      expect((await product.http("DELETE", `/sandboxes/${sb}`)).status).toBe(200);
    const deleted = await product.cli(["image", "delete", "bb"]);
    expect(deleted).toMatchObject({ code: 0, stdout: "deleted image bb\n" });
    const names = (await product.http("GET", "/images")).json<{ name: string }[]>().map((i) => i.name);
    expect(names).toContain("bb-saved");
    expect(names).not.toContain("bb");
  }, 180_000);

  it("import: the tar is uploaded through the API (any user); a server path needs an admin; the body cap holds", async () => {
    const tar = join(work, "bb-docker.tar");
    dockerArchive(lay, "v2", tar, "bt/busybox:v2");
    const up = await product.cli(["image", "import", tar, "--name", "uploaded"]);
    expect(up.stderr).toMatch(/import uploaded: /);
    expect(up).toMatchObject({ code: 0, stdout: "image uploaded ready\n" });
    const created = await product.cli(["create", "--image", "uploaded", "--name", "from-upload", "--json"]);
    expect(created.code).toBe(0);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    expect((await exec(product, id, ["cat", "/etc/opq/c"])).body.stdout).toBe("c\n");
    expect((await product.http("DELETE", `/sandboxes/${id}`)).status).toBe(200);
    expect(readdirSync(join(imagesDir(), ".tmp"))).toEqual([]);

    const serverPath = await product.cli(["image", "import", tar, "--name", "srv", "--server-path"]);
    expect(serverPath.code).not.toBe(0);
    expect(serverPath.stderr).toMatch(/admin/);

    const big = join(work, "big.tar");
    writeFileSync(big, Buffer.alloc(9 * 1024 * 1024));
    const refused = await product.cli(["image", "import", big, "--name", "too-big"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/larger than 8388608 bytes/);
    const junk = join(work, "junk.tar");
    writeFileSync(junk, "not a tar at all");
    const bad = await product.cli(["image", "import", junk, "--name", "junk"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/not a tar archive|not a docker-archive or oci-archive/);
    expect(existsSync(join(imagesDir(), "junk"))).toBe(false);
  }, 180_000);
});
