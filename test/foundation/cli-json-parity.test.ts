// `bhatti --json` prints exactly the REST API's body for the same object (issue 12): both build it with
// @bhatti/proto/rest-json. The real CLI bundle against the whole product (`bhatti serve`, gvisor,
// busybox image); each CLI output is compared with the REST body read right after it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, startProduct, waitForSandbox } from "../thermal/product-harness.js";

describe.skipIf(gvisorFactory.unavailable() !== undefined)("bhatti --json equals the REST body", () => {
  let product: Product;
  let id = "";

  const cliJson = async (args: readonly string[]): Promise<unknown> => {
    const r = await product.cli(["--json", ...args]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as unknown;
  };
  const rest = async (path: string): Promise<unknown> => {
    const res = await product.http("GET", path);
    expect(res.status, res.text).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    product = await startProduct({ flags: ["--log-level=warn", "--thermal-warm-after=1h"] });
    // An init command gives the sandbox a session for `ps` to list.
    const created = await product.http("POST", "/sandboxes", {
      body: { name: "parity", init: "sleep 600", labels: { team: "json" } },
    });
    expect(created.status, created.text).toBe(201);
    id = created.json<{ id: string }>().id;
    await waitForSandbox(product, id, (s) => s.status === "running", 90_000);
  }, 180_000);

  afterAll(async () => {
    await product?.dispose();
  }, 180_000);

  it("sandbox info and list", async () => {
    expect(await cliJson(["info", "parity"])).toEqual(await rest(`/sandboxes/${id}`));
    expect(await cliJson(["list"])).toEqual(await rest("/sandboxes"));
  });

  it("sessions (`ps`): argv and created_at in Unix seconds, as the agent's v1 JSON", async () => {
    const cli = (await cliJson(["ps", "parity"])) as {
      session_id: string;
      argv: string;
      created_at: number;
    }[];
    expect(cli).toEqual(await rest(`/sandboxes/${id}/sessions`));
    const init = cli.find((s) => s.session_id === "init");
    expect(init?.argv).toContain("sleep 600");
    expect(Number.isInteger(init?.created_at)).toBe(true);
  });

  it("file listings (`file ls`): mtime in Unix seconds", async () => {
    const put = await product.http("PUT", `/sandboxes/${id}/files?path=/tmp/parity/a.txt`, {
      body: "hello",
    });
    expect(put.status, put.text).toBe(200);
    const cli = (await cliJson(["file", "ls", "parity", "/tmp/parity"])) as { name: string; mtime: number }[];
    expect(cli).toEqual(await rest(`/sandboxes/${id}/files?ls=true&path=/tmp/parity`));
    expect(cli.map((f) => f.name)).toEqual(["a.txt"]);
    expect(cli[0]?.mtime).toBeGreaterThan(0);
  });

  it("images, exec results and stop", async () => {
    expect(await cliJson(["image", "list"])).toEqual(await rest("/images"));
    const exec = await product.http("POST", `/sandboxes/${id}/exec`, {
      body: { cmd: ["sh", "-c", "echo o; echo e >&2"] },
    });
    expect(exec.status, exec.text).toBe(200);
    expect(await cliJson(["exec", "parity", "--", "sh", "-c", "echo o; echo e >&2"])).toEqual(exec.json());
    const stopped = await cliJson(["stop", "parity"]);
    expect(stopped).toEqual(await rest(`/sandboxes/${id}`));
  });
});
