import { execFile } from "node:child_process";
import { CliError } from "../cli-error.js";

// Where an installation updates from: the git repository its running release was checked out
// of, and the remote branch it follows (remembered in the repository's config as
// `bhatti.updateRef`, so that releases checked out detached by `bhatti update` still know it).

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs git in `cwd`; never throws (a missing git is code 127). */
export function git(cwd: string, args: readonly string[], timeoutMs = 120_000): Promise<GitResult> {
  return new Promise((resolve) => {
    execFile(
      "git",
      ["-C", cwd, ...args],
      // No prompt for credentials: an update must not hang on a terminal nobody watches.
      { timeout: timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" }, maxBuffer: 8 << 20 },
      (error, stdout, stderr) => {
        const code =
          error === null ? 0 : typeof error.code === "number" ? error.code : error.killed ? 124 : 127;
        resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
      },
    );
  });
}

export async function gitOrThrow(
  cwd: string,
  args: readonly string[],
  what: string,
  timeoutMs?: number,
): Promise<string> {
  const r = await git(cwd, args, timeoutMs);
  if (r.code !== 0) throw new CliError(`${what} failed: ${r.stderr || `git exited with ${r.code}`}`);
  return r.stdout;
}

/** The remote branch `root` follows, e.g. "origin/main"; `remember` stores it for later releases. */
export async function trackedRef(root: string, remember = false): Promise<string> {
  const inside = await git(root, ["rev-parse", "--is-inside-work-tree"]);
  if (inside.code !== 0 || inside.stdout !== "true") {
    throw new CliError(
      `${root} is not a git checkout`,
      "bhatti update works on installs made by install.sh from a git clone",
    );
  }
  const remembered = await git(root, ["config", "--get", "bhatti.updateRef"]);
  if (remembered.code === 0 && remembered.stdout !== "") return remembered.stdout;
  const upstream = await git(root, ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"]);
  if (upstream.code !== 0 || upstream.stdout === "") {
    throw new CliError(
      `the checkout at ${root} does not follow a remote branch`,
      "set one with: git -C <checkout> branch --set-upstream-to origin/main",
    );
  }
  if (remember) {
    await gitOrThrow(root, ["config", "bhatti.updateRef", upstream.stdout], "remembering the update branch");
  }
  return upstream.stdout;
}

/** `git fetch` of the tracked remote; returns the remote head's commit. */
export async function fetchRemoteHead(root: string, ref: string, timeoutMs = 120_000): Promise<string> {
  const slash = ref.indexOf("/");
  const remote = slash > 0 ? ref.slice(0, slash) : "origin";
  await gitOrThrow(root, ["fetch", "--quiet", remote], `git fetch ${remote}`, timeoutMs);
  return gitOrThrow(root, ["rev-parse", `${ref}^{commit}`], `resolving ${ref}`);
}

export const headOf = (root: string): Promise<string> =>
  gitOrThrow(root, ["rev-parse", "HEAD"], "reading HEAD");

/** Whether `commit` is already contained in HEAD (nothing to update to). */
export async function isAncestorOfHead(root: string, commit: string): Promise<boolean> {
  return (await git(root, ["merge-base", "--is-ancestor", commit, "HEAD"])).code === 0;
}

export const subjectOf = (root: string, commit: string): Promise<string> =>
  gitOrThrow(root, ["log", "-1", "--format=%s", commit], "reading the commit subject");

export interface UpdateStatus {
  current: string;
  ref?: string;
  latest?: string;
  available: boolean | null;
  /** Why the check could not be made (offline, not a checkout...); available is null then. */
  error?: string;
}

/** Whether the remote branch has commits the running release lacks (fetches; bounded by timeoutMs). */
export async function checkForUpdate(root: string, timeoutMs: number): Promise<UpdateStatus> {
  let current = "";
  try {
    current = await headOf(root);
    const ref = await trackedRef(root);
    const latest = await fetchRemoteHead(root, ref, timeoutMs);
    return { current, ref, latest, available: latest !== current && !(await isAncestorOfHead(root, latest)) };
  } catch (e) {
    return { current, available: null, error: e instanceof Error ? e.message : String(e) };
  }
}
