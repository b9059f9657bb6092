// The vmm SIGKILLed while it builds a template (after the template sandbox was checkpointed,
// before the template is committed): the restarted vmm removes the half-built template and the
// template sandbox (its mounts, network and files), builds the template again, and creates use
// it. Then SIGKILLed in a create from the template (after the restore, before the claim): the
// restarted vmm removes the half-made sandbox and the template keeps serving creates.
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../snapshots/snapshot-helpers.js";
import { type Product, exec, startProduct } from "../thermal/product-harness.js";
import { createPathOf, templatesOf, waitForTemplate } from "./template-helpers.js";

const POINT = "vmm.template.after-checkpoint";
const CREATE_POINT = "vmm.template-create.after-restore";

describe("SIGKILL of the vmm during a template build", () => {
  let product: Product;
  let onceDir: string;

  beforeAll(async () => {
    onceDir = mkdtempSync(join(tmpdir(), "bhatti-test-tplcrash-"));
    product = await startProduct({
      // busybox2 is installed only once serve is up: the build (and the crash) must not happen
      // during serve's start-up, which a dying child aborts.
      flags: [
        "--thermal-warm-after=30m",
        "--thermal-cold-after=60m",
        "--create-template-images=busybox2",
        "--create-pool-size=0",
      ],
      env: { BHATTI_CRASH_AT: `${POINT},${CREATE_POINT}`, BHATTI_CRASH_ONCE_DIR: onceDir },
    });
  }, 240_000);

  afterAll(async () => {
    try {
      await product?.dispose();
    } finally {
      rmSync(onceDir, { recursive: true, force: true });
    }
  }, 240_000);

  it("leaves no half-built template or template sandbox, and the template is rebuilt", {
    timeout: 400_000,
  }, async () => {
    symlinkSync(
      join(product.env.stateDir, "images", "busybox"),
      join(product.env.stateDir, "images", "busybox2"),
    );
    // The first create of the image finds no template (it boots, or meets the crash: 503) and
    // starts the build.
    const first = await product.http("POST", "/sandboxes", { body: { name: "trigger", image: "busybox2" } });
    expect([201, 503], first.text).toContain(first.status);
    await waitUntil(
      "the crash point fired",
      async () => product.output(),
      (out) => out.includes(`crash point ${POINT}: SIGKILL`),
      240_000,
    );
    const tpl = await waitForTemplate(product, "busybox2");
    // The restarted vmm found the half-built template and the template sandbox, and removed them.
    expect(product.output()).toContain("template leftovers removed");
    const root = join(product.env.stateDir, "templates");
    expect(readdirSync(join(root, "busybox2")).filter((e) => e.endsWith(".tmp"))).toEqual([]);
    await waitUntil(
      "the crashed build's template sandbox is gone",
      async () => (existsSync(join(root, ".work")) ? readdirSync(join(root, ".work")) : []),
      (left) => left.length === 0,
    );
    expect(templatesOf(product, "busybox2").map((t) => t.key)).toEqual([tpl.key]);

    // The vmm killed right after restoring the template into a new sandbox (before the claim):
    // the create fails, the restarted vmm removes the half-made sandbox, the template stays.
    const vmmPid = product.childPid("services/vmm/dist");
    const crashed = await product.http("POST", "/sandboxes", {
      body: { name: "crashed", image: "busybox2" },
    });
    // The create fails with 503 (retry later): the vmm's stream was cut while the client waited,
    // which is the service going away, not the client's cancel (499).
    expect(crashed.status, crashed.text).toBe(503);
    expect(product.output()).toContain(`crash point ${CREATE_POINT}: SIGKILL`);
    await waitUntil(
      "the vmm is back",
      async () => product.childPid("services/vmm/dist"),
      (pid) => pid !== undefined && pid !== vmmPid,
    );
    const sandboxesDir = join(product.env.stateDir, "sandboxes");
    await waitUntil(
      "the half-made sandbox is removed",
      async () => readdirSync(sandboxesDir).filter((d) => !existsSync(join(sandboxesDir, d, "engine.json"))),
      (left) => left.length === 0,
    );
    expect(templatesOf(product, "busybox2").map((t) => t.key)).toEqual([tpl.key]);

    const res = await product.http("POST", "/sandboxes", {
      body: { name: "after-crash", image: "busybox2" },
    });
    expect(res.status, res.text).toBe(201);
    const id = res.json<{ id: string }>().id;
    expect(await createPathOf(product, id)).toBe("template");
    const r = await exec(product, id, ["hostname"]);
    expect(r.body.stdout.trim()).toBe("after-crash");
    expect((await product.http("DELETE", `/sandboxes/${id}`)).status).toBe(200);
  });
});
