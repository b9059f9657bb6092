import { execFile } from "node:child_process";
import {
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { basename, join } from "node:path";
import { CliError } from "../cli-error.js";
import { git, gitOrThrow } from "./update-source.js";

// A release is a checkout of one commit, built and smoke-tested in a directory of its own
// (a git worktree of the installed repository) before the install link is flipped to it.

function run(
  file: string,
  args: readonly string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, maxBuffer: 32 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, output: `${stdout}${stderr}`.trim() });
    });
  });
}

async function runOrThrow(
  file: string,
  args: readonly string[],
  cwd: string,
  what: string,
  timeoutMs = 1_800_000,
): Promise<string> {
  const r = await run(file, args, cwd, timeoutMs);
  if (r.code !== 0)
    throw new CliError(`${what} failed (exit ${r.code}):\n${r.output.split("\n").slice(-20).join("\n")}`);
  return r.output;
}

/** The checkout the install link points at; the link must be a symlink (install.sh makes it one). */
export function currentRelease(link: string): string {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(link);
  } catch {
    throw new CliError(`${link} does not exist`, "install bhatti with ./install.sh first");
  }
  if (!stat.isSymbolicLink())
    throw new CliError(`${link} is not a symlink`, "install.sh links it to the checkout; rerun install.sh");
  return realpathSync(link);
}

/** Checks out `commit` into `<releasesDir>/<commit12>` (replacing a half-made one). */
export async function checkoutRelease(repo: string, releasesDir: string, commit: string): Promise<string> {
  const dir = join(releasesDir, commit.slice(0, 12));
  if (existsSync(dir)) {
    await git(repo, ["worktree", "remove", "--force", dir]);
    rmSync(dir, { recursive: true, force: true });
    await git(repo, ["worktree", "prune"]);
  }
  await gitOrThrow(repo, ["worktree", "add", "--detach", dir, commit], `checking out ${commit.slice(0, 12)}`);
  return dir;
}

/**
 * Installs the dependencies and builds the release. Unchanged dependencies (the same
 * package-lock.json) are hard-linked from the running release instead of fetched again.
 */
export async function buildRelease(dir: string, from: string, log: (line: string) => void): Promise<void> {
  const lock = (root: string) => {
    try {
      return readFileSync(join(root, "package-lock.json"), "utf8");
    } catch {
      return undefined;
    }
  };
  const sameLock =
    lock(dir) !== undefined && lock(dir) === lock(from) && existsSync(join(from, "node_modules"));
  if (sameLock) {
    log("dependencies unchanged: linking node_modules from the running release");
    await runOrThrow(
      "cp",
      ["-al", join(from, "node_modules"), join(dir, "node_modules")],
      dir,
      "copying node_modules",
    );
  } else {
    log("npm ci");
    await runOrThrow("npm", ["ci", "--no-audit", "--no-fund"], dir, "npm ci");
  }
  log("building");
  await runOrThrow(process.execPath, ["scripts/build.mjs"], dir, "the build");
}

/** What the release must do before it is switched to: answer version, load its command line, have every process bundle. */
export async function smokeTest(dir: string): Promise<string> {
  const cli = join(dir, "cli/dist/bhatti.mjs");
  const versionOut = await runOrThrow(
    process.execPath,
    [cli, "version", "--offline", "--json"],
    dir,
    "`bhatti version`",
    60_000,
  );
  let version = "";
  try {
    version = String((JSON.parse(versionOut) as { version?: unknown }).version ?? "");
  } catch {
    // handled below
  }
  if (version === "")
    throw new CliError(`the new release's \`bhatti version\` printed ${JSON.stringify(versionOut)}`);
  const help = await runOrThrow(process.execPath, [cli, "--help"], dir, "`bhatti --help`", 60_000);
  if (!help.includes("serve")) throw new CliError("the new release's `bhatti --help` lists no serve command");
  const bundles = [
    join(dir, "gateway/dist/main.js"),
    ...["store", "network", "vmm", "thermal"].map((s) => join(dir, "services", s, "dist/main.js")),
  ];
  for (const bundle of bundles) {
    if (!existsSync(bundle)) throw new CliError(`the new release has no ${bundle}`);
    await runOrThrow(process.execPath, ["--check", bundle], dir, `node --check ${bundle}`, 60_000);
  }
  return version;
}

/** Points `link` at `target` in one rename (a reader sees the old or the new release, never none). */
export function flipLink(link: string, target: string): void {
  const tmp = `${link}.update-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}

const previousFile = (releasesDir: string) => join(releasesDir, "previous");

export function recordPrevious(releasesDir: string, dir: string): void {
  const tmp = `${previousFile(releasesDir)}.tmp`;
  rmSync(tmp, { force: true });
  // Written then renamed, so a crash leaves the old record or the new one.
  symlinkSync(dir, tmp);
  renameSync(tmp, previousFile(releasesDir));
}

/** The release `--rollback` returns to, if it still exists. */
export function previousRelease(releasesDir: string): string | undefined {
  try {
    const dir = realpathSync(previousFile(releasesDir));
    return existsSync(join(dir, "cli/dist/bhatti.mjs")) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Removes releases in `releasesDir` other than `keep` (the current and the previous one). */
export async function pruneReleases(
  repo: string,
  releasesDir: string,
  keep: readonly string[],
): Promise<string[]> {
  const removed: string[] = [];
  for (const name of readdirSync(releasesDir)) {
    const dir = join(releasesDir, name);
    if (name === basename(previousFile(releasesDir)) || !/^[0-9a-f]{12}$/.test(name)) continue;
    if (keep.some((k) => realpathSync(k) === realpathSync(dir))) continue;
    await git(repo, ["worktree", "remove", "--force", dir]);
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  await git(repo, ["worktree", "prune"]);
  return removed;
}

/** Runs images/<tier>/build.sh of the release for the tiers asked for ("all" or names); each script skips a built image. */
export async function buildTiers(
  dir: string,
  tiers: string,
  stateDir: string,
  log: (line: string) => void,
): Promise<string[]> {
  const imagesDir = join(dir, "images");
  const available = existsSync(imagesDir)
    ? readdirSync(imagesDir).filter((t) => existsSync(join(imagesDir, t, "build.sh")))
    : [];
  const wanted =
    tiers === "all"
      ? available
      : tiers
          .split(",")
          .map((t) => t.trim())
          .filter((t) => t !== "");
  const unknown = wanted.filter((t) => !available.includes(t));
  if (unknown.length > 0) {
    throw new CliError(
      `no such tier: ${unknown.join(", ")}`,
      `tiers in this release: ${available.join(", ")}`,
    );
  }
  for (const tier of wanted) {
    log(`tier ${tier}`);
    await runOrThrow(
      "sh",
      [join(imagesDir, tier, "build.sh"), "--state-dir", stateDir],
      dir,
      `building tier ${tier}`,
      3_600_000,
    );
  }
  return wanted;
}
