import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkForUpdate } from "./update-source.js";

const gitId = ["-c", "user.name=bhatti-test", "-c", "user.email=bhatti-test@example.invalid"];
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-C", cwd, ...gitId, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();

// Real git repositories in a temp dir: a bare "remote", a clone that follows it.
describe("the update check (bhatti version)", () => {
  let tmp: string;
  let remote: string;
  let clone: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "bhatti-test-updcheck-"));
    remote = join(tmp, "remote.git");
    clone = join(tmp, "clone");
    execFileSync("git", ["init", "--quiet", "--bare", "-b", "main", remote]);
    execFileSync("git", ["clone", "--quiet", remote, clone], { stdio: "ignore" });
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "one");
    git(clone, "push", "--quiet", "origin", "HEAD:main");
    git(clone, "branch", "--quiet", "--set-upstream-to", "origin/main");
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("is up to date, then sees a commit pushed to the remote", async () => {
    expect(await checkForUpdate(clone, 10_000)).toMatchObject({ available: false, ref: "origin/main" });
    const other = join(tmp, "other");
    execFileSync("git", ["clone", "--quiet", remote, other], { stdio: "ignore" });
    git(other, "commit", "--quiet", "--allow-empty", "-m", "two");
    git(other, "push", "--quiet", "origin", "HEAD:main");
    const latest = git(other, "rev-parse", "HEAD");
    expect(await checkForUpdate(clone, 10_000)).toMatchObject({ available: true, latest });
  });

  it("says it could not check when the remote is unreachable", async () => {
    git(clone, "remote", "set-url", "origin", join(tmp, "gone.git"));
    const status = await checkForUpdate(clone, 10_000);
    expect(status.available).toBeNull();
    expect(status.error).toMatch(/git fetch origin failed/);
  });

  it("`bhatti version` (the built CLI) exits 0 and says so when it cannot check", async () => {
    const bundle = fileURLToPath(new URL("../../dist/bhatti.mjs", import.meta.url));
    // This repository's checkout may or may not follow a remote; either way version must exit 0.
    const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile(process.execPath, [bundle, "version", "--json"], { timeout: 60_000 }, (error, stdout) =>
        resolve({ code: error === null ? 0 : 1, stdout }),
      ),
    );
    expect(out.code).toBe(0);
    const json = JSON.parse(out.stdout) as {
      version: string;
      update: { available: boolean | null; error?: string };
    };
    expect(json.version).toMatch(/^\d+\.\d+\.\d+/);
    if (json.update.available === null) expect(json.update.error).toBeTruthy();
  });
});
