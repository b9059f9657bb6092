// `bhatti update` end to end: an installation (a git clone, built, the install link pointing at
// it) runs the real product with a sandbox; a new commit lands on its remote (a local bare
// repository); `bhatti version` sees it, `bhatti update` builds and smoke-tests it in a release
// directory, flips the link and restarts `bhatti serve`, and the sandbox's process lives through
// it; `bhatti update --rollback` goes back the same way.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, exec, startProduct } from "../thermal/product-harness.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const gitId = ["-c", "user.name=bhatti-test", "-c", "user.email=bhatti-test@example.invalid"];

function sh(cwd: string, file: string, args: readonly string[]): string {
  return execFileSync(file, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** The processes whose command line mentions `needle` (e.g. a release's vmm bundle). */
function processesWith(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) pids.push(Number(entry));
    } catch {
      // exited
    }
  }
  return pids;
}

describe("bhatti update against a local bare repository", () => {
  let tmp: string;
  let installed: string;
  let link: string;
  let releases: string;
  let product: Product | undefined;
  let newCommit: string;
  let oldCommit: string;

  /** The installed CLI (through the link, as /usr/local/bin/bhatti runs it), inside the product's netns. */
  const installedCli = (args: readonly string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      if (product === undefined) throw new Error("no product");
      execFile(
        "nsenter",
        [
          `--net=${product.env.hostNetnsPath}`,
          "--",
          process.execPath,
          join(link, "cli/dist/bhatti.mjs"),
          ...args,
        ],
        {
          env: {
            ...process.env,
            BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client.yaml"),
            BHATTI_URL: `http://127.0.0.1:${product.port}`,
          },
          timeout: 600_000,
          maxBuffer: 16 << 20,
        },
        (error, stdout, stderr) =>
          resolve({
            code: error === null ? 0 : typeof error.code === "number" ? error.code : 1,
            stdout,
            stderr,
          }),
      );
    });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "bhatti-test-update-"));
    const remote = join(tmp, "remote.git");
    installed = join(tmp, "installed");
    link = join(tmp, "opt-bhatti");
    releases = join(tmp, "releases");
    // The remote holds this branch's committed tree; the installation is a clone that follows it.
    sh(tmp, "git", ["clone", "--quiet", "--bare", repoRoot, remote]);
    sh(tmp, "git", ["clone", "--quiet", remote, installed]);
    oldCommit = sh(installed, "git", ["rev-parse", "HEAD"]);
    // What install.sh does, minus apt: dependencies, build, the link.
    sh(tmp, "cp", ["-al", join(repoRoot, "node_modules"), join(installed, "node_modules")]);
    sh(installed, process.execPath, ["scripts/build.mjs"]);
    symlinkSync(installed, link);
    product = await startProduct({ flags: [], serveBundle: join(link, "cli/dist/bhatti.mjs") });
    // A new commit on the remote, as a developer would push it.
    const dev = join(tmp, "dev");
    sh(tmp, "git", ["clone", "--quiet", remote, dev]);
    sh(dev, "sh", ["-c", "echo '- update test marker' >> docs/decisions.md"]);
    sh(dev, "git", [...gitId, "commit", "--quiet", "-am", "a newer commit"]);
    sh(dev, "git", ["push", "--quiet", "origin", "HEAD"]);
    newCommit = sh(dev, "git", ["rev-parse", "HEAD"]);
  }, 300_000);

  afterAll(async () => {
    await product?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }, 180_000);

  it("updates to the new commit, restarts serve onto it, and the sandbox's process survives; rollback goes back", async () => {
    if (product === undefined) throw new Error("no product");
    const created = await product.http("POST", "/sandboxes", { body: { name: "upd" } });
    expect(created.status, created.text).toBe(201);
    const id = created.json<{ id: string }>().id;
    const started = await exec(product, id, [
      "sh",
      "-c",
      "echo alive > /tmp/marker; sleep 100000 >/dev/null 2>&1 & echo $!",
    ]);
    expect(started.body.exit_code).toBe(0);
    const sleeper = started.body.stdout.trim();
    const stillRunning = async () =>
      (await exec(product as Product, id, ["sh", "-c", `kill -0 ${sleeper} && cat /tmp/marker`])).body;

    const before = await installedCli(["version", "--json"]);
    expect(before.code, before.stderr).toBe(0);
    const beforeJson = JSON.parse(before.stdout) as {
      update: { available: boolean; latest: string; current: string };
    };
    expect(beforeJson.update).toMatchObject({ available: true, latest: newCommit, current: oldCommit });

    const update = await installedCli(["update", "--json", "--link", link, "--releases-dir", releases]);
    expect(update.code, `${update.stdout}\n${update.stderr}`).toBe(0);
    const result = JSON.parse(update.stdout) as {
      status: string;
      to: string;
      release: string;
      restarted: { how: string }[];
    };
    expect(result).toMatchObject({ status: "updated", to: newCommit, restarted: [{ how: "serve" }] });
    const release = join(releases, newCommit.slice(0, 12));
    expect(realpathSync(link)).toBe(release);
    expect(readFileSync(join(link, "docs/decisions.md"), "utf8")).toContain("update test marker");
    // The services now run from the new release, and only from it.
    expect(processesWith(join(release, "services/vmm/dist/main.js")).length).toBe(1);
    expect(processesWith(join(installed, "services/vmm/dist/main.js"))).toEqual([]);
    expect((await product.http("GET", "/health")).status).toBe(200);
    expect(await stillRunning()).toMatchObject({ exit_code: 0, stdout: "alive\n" });

    const after = await installedCli(["version"]);
    expect(after.stdout).toContain("up to date with origin/");

    const rollback = await installedCli([
      "update",
      "--rollback",
      "--json",
      "--link",
      link,
      "--releases-dir",
      releases,
    ]);
    expect(rollback.code, `${rollback.stdout}\n${rollback.stderr}`).toBe(0);
    expect(JSON.parse(rollback.stdout)).toMatchObject({ status: "rolled_back", to: installed });
    expect(realpathSync(link)).toBe(installed);
    expect(processesWith(join(installed, "services/vmm/dist/main.js")).length).toBe(1);
    expect(processesWith(join(release, "services/vmm/dist/main.js"))).toEqual([]);
    expect(await stillRunning()).toMatchObject({ exit_code: 0, stdout: "alive\n" });
  }, 900_000);

  it("undoes an update whose server does not come up: link and services back on the running release, sandbox untouched", async () => {
    if (product === undefined) throw new Error("no product");
    // Where the first test left it: the original installation, with its sandbox.
    expect(realpathSync(link)).toBe(installed);
    const list = (await product.http("GET", "/sandboxes")).json<{ id: string; name: string }[]>();
    const id = list.find((s) => s.name === "upd")?.id ?? "";
    const marked = await exec(product, id, [
      "sh",
      "-c",
      "echo again > /tmp/marker2; sleep 100000 >/dev/null 2>&1 & echo $!",
    ]);
    const sleeper = marked.body.stdout.trim();
    // A commit that builds and passes the smoke test, but whose gateway dies at start.
    const dev = join(tmp, "dev");
    sh(dev, "sh", ["-c", "sed -i '1i throw new Error(\"broken on purpose\");' gateway/src/main.ts"]);
    sh(dev, "git", [...gitId, "commit", "--quiet", "-am", "a gateway that does not start"]);
    sh(dev, "git", ["push", "--quiet", "origin", "HEAD"]);
    const broken = sh(dev, "git", ["rev-parse", "HEAD"]);

    const update = await installedCli([
      "update",
      "--link",
      link,
      "--releases-dir",
      releases,
      "--health-timeout",
      "20",
    ]);
    expect(update.code, `${update.stdout}\n${update.stderr}`).toBe(1);
    expect(update.stderr).toContain(
      `the new release (${broken.slice(0, 12)}) did not come up; switched back to ${installed}`,
    );
    expect(realpathSync(link)).toBe(installed);
    expect(processesWith(join(installed, "services/vmm/dist/main.js")).length).toBe(1);
    expect(processesWith(join(releases, broken.slice(0, 12)))).toEqual([]);
    expect((await product.http("GET", "/health")).status).toBe(200);
    const alive = await exec(product, id, ["sh", "-c", `kill -0 ${sleeper} && cat /tmp/marker2`]);
    expect(alive.body).toMatchObject({ exit_code: 0, stdout: "again\n" });
  }, 900_000);
});
