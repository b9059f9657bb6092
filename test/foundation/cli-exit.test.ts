// The real `bhatti` CLI (cli/dist/bhatti.mjs) against the whole product (`bhatti serve`, gvisor,
// busybox image) in a stand-in netns: every command exits on its own as soon as its work is done
// (issue 13: `exec --detach` printed the pid and then never exited). A command that has not
// exited within its deadline is killed and the test fails.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, startProduct, waitForSandbox } from "../thermal/product-harness.js";

const bhatti = fileURLToPath(new URL("../../cli/dist/bhatti.mjs", import.meta.url));
/** Generous for a loaded machine; a command that hangs never gets there. */
const EXIT_DEADLINE_MS = 45_000;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

describe.skipIf(gvisorFactory.unavailable() !== undefined)("bhatti CLI commands exit when done", () => {
  let product: Product;
  let home: string;

  /** Runs the CLI in the product's netns; resolves on the process's exit event. */
  const cli = (args: readonly string[]): Promise<CliRun> =>
    new Promise((resolve, reject) => {
      const child = spawn(
        "nsenter",
        [`--net=${product.env.hostNetnsPath}`, "--", process.execPath, bhatti, ...args],
        {
          env: {
            ...process.env,
            HOME: home,
            XDG_CACHE_HOME: join(home, ".cache"),
            BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client-user.yaml"),
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      const bytes: Buffer[] = [];
      child.stdout.on("data", (d: Buffer) => {
        bytes.push(d);
        stdout += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(
          new Error(`bhatti ${args.join(" ")} did not exit within ${EXIT_DEADLINE_MS} ms; stdout: ${stdout}`),
        );
      }, EXIT_DEADLINE_MS);
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        // The pipes may still hold the last bytes; 'close' follows 'exit' once they are read.
        child.once("close", () => resolve({ code, stdout, stderr, stdoutBytes: Buffer.concat(bytes) }));
      });
    });

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "bhatti-test-cli-exit-"));
    product = await startProduct({ flags: ["--log-level=warn", "--thermal-warm-after=1h"] });
    const created = await product.http("POST", "/sandboxes", { body: { name: "exits" } });
    expect(created.status).toBe(201);
    await waitForSandbox(product, created.json<{ id: string }>().id, (s) => s.status === "running", 90_000);
  }, 180_000);

  afterAll(async () => {
    try {
      await product?.dispose();
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 180_000);

  it("exec --detach prints the pid and the output file, then exits", async () => {
    const r = await cli(["exec", "exits", "--detach", "--", "sleep", "600"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pid: \d+\noutput: \S+\n$/);
    // The detached command really runs on in the sandbox.
    const pid = /pid: (\d+)/.exec(r.stdout)?.[1];
    const ps = await cli(["exec", "exits", "--", "sh", "-c", `kill -0 ${pid} && echo alive`]);
    expect(ps.stdout).toBe("alive\n");
  });

  it("exec --detach --json exits with the pid as JSON", async () => {
    const r = await cli(["--json", "exec", "exits", "--detach", "--", "sleep", "600"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { pid: number; output_file: string; detached: boolean };
    expect(out.detached).toBe(true);
    expect(out.pid).toBeGreaterThan(0);
    expect(out.output_file).not.toBe("");
  });

  it("exec passes output and the exit code, then exits", async () => {
    const r = await cli(["exec", "exits", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
  });

  it("exec passes output bytes through unchanged (not UTF-8 text)", async () => {
    const r = await cli(["exec", "exits", "--", "printf", "\\377\\000\\376ok"]);
    expect(r.code).toBe(0);
    expect([...r.stdoutBytes]).toEqual([0xff, 0x00, 0xfe, 0x6f, 0x6b]);
  });

  it("list, info and file ls exit after printing", async () => {
    const list = await cli(["--json", "list"]);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((s) => s.name)).toContain("exits");
    const info = await cli(["--json", "info", "exits"]);
    expect(info.code).toBe(0);
    expect((JSON.parse(info.stdout) as { status: string }).status).toBe("running");
    const ls = await cli(["file", "ls", "exits", "/"]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain("bin");
  });

  it("a failed call exits with an error and a hint", async () => {
    const r = await cli(["--url", "http://127.0.0.1:1", "list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot reach bhatti at http:\/\/127\.0\.0\.1:1/);
    expect(r.stderr).toContain("hint: ");
    const missing = await cli(["exec", "no-such-sandbox", "--", "true"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: .*not found/i);
  });
});
