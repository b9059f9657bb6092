// bhatti runs on Node 24 LTS (issue 13): the `bhatti` CLI as installed (the built bundle run by
// the `node` on PATH, as install.sh's /usr/local/bin/bhatti wrapper does) and the guest agent
// package (which carries its own Node, run through its own loader, as in a busybox-only image)
// both report a Node >= 24, the same one that runs the tests.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { buildAgentPackage } from "../engine-conformance/agent-package.js";

const bhatti = fileURLToPath(new URL("../../cli/dist/bhatti.mjs", import.meta.url));
const major = (v: string) => Number(v.replace(/^v/, "").split(".")[0]);

describe("Node runtime", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), "bhatti-test-node-runtime-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("the node on PATH is the one running the tests, and it is >= 24", () => {
    const onPath = execFileSync("sh", ["-c", "node -p process.versions.node"], { encoding: "utf8" }).trim();
    expect(onPath).toBe(process.versions.node);
    expect(major(onPath)).toBeGreaterThanOrEqual(24);
  });

  it("`bhatti version --json` reports the Node it runs on", () => {
    const home = tempDir();
    const out = execFileSync("sh", ["-c", 'exec node "$0" --json version', bhatti], {
      encoding: "utf8",
      env: { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, ".cache") },
    });
    const v = JSON.parse(out) as { version: string; node: string };
    expect(v.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(v.node).toBe(process.versions.node);
    expect(major(v.node)).toBeGreaterThanOrEqual(24);
  });

  it("a command that loads the command line keeps Node's compile cache in a private dir under HOME", () => {
    const home = tempDir();
    execFileSync("sh", ["-c", 'exec node "$0" --help', bhatti], {
      encoding: "utf8",
      env: { ...process.env, HOME: home, XDG_CACHE_HOME: "" },
    });
    const dir = join(home, ".cache/bhatti/compile-cache");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // Node writes one subdirectory per Node version, holding the cached code.
    expect(readdirSync(dir).some((d) => d.startsWith(`${process.version}-`))).toBe(true);
  });

  it("the agent package carries this Node and runs it with an empty environment through its own loader", () => {
    const pkg = buildAgentPackage(join(tempDir(), "agent"));
    const manifest = JSON.parse(readFileSync(join(pkg, "manifest.json"), "utf8")) as { node: string };
    expect(manifest.node).toBe(process.version);
    const ran = execFileSync(
      join(pkg, "lib/ld-linux-x86-64.so.2"),
      ["--library-path", join(pkg, "lib"), join(pkg, "node"), "-p", "process.version"],
      { encoding: "utf8", env: {} },
    ).trim();
    expect(ran).toBe(process.version);
    expect(major(ran)).toBeGreaterThanOrEqual(24);
  }, 120_000);
});
