import { spawn } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync } from "node:fs";
import { CommandError, runCommand } from "./command.js";

/**
 * gVisor's runsc, driven through its CLI with the flags of the recipe verified on these
 * machines (platform.md, "gVisor with its own network stack"):
 * `--network=sandbox --net-disconnect-ok` (own netstack; checkpoint allowed after TCP),
 * `--overlay2=none` (writes go to the host overlay upper dir, not to sandbox memory),
 * `--root <state>/runsc`, `--platform=<ptrace|systrap>`.
 *
 * `run` and `restore` start long-lived sandbox processes, so they go through a launcher that
 * (1) joins the sandbox's unified cgroup (freeze/kill), and (2) enters a private mount
 * namespace with a tmpfs over /proc/sys/net, which the Debian builds need to pass their
 * outdated "root network namespace" check. Their output goes to a log file, never a pipe: the
 * sandbox inherits runsc's stdio and would hold a pipe open forever.
 */
export interface Runsc {
  readonly path: string;
  readonly platform: string;
  readonly root: string;
  version(): Promise<string>;
  run(id: string, bundle: string, launch: LaunchOptions): Promise<void>;
  restore(id: string, bundle: string, imagePath: string, launch: LaunchOptions): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /**
   * Saves memory and processes into `imagePath`; the container exits afterwards, unless
   * `leaveRunning` (named snapshots): then it stays as it was (a paused container stays paused).
   * `flags`: the image's extra global flags, the same as its run (gVisor requires them).
   */
  checkpoint(
    id: string,
    imagePath: string,
    options?: { leaveRunning?: boolean; flags?: readonly string[] },
  ): Promise<void>;
  /** Kills (if running) and forgets the container; a missing container is not an error. */
  delete(id: string): Promise<void>;
  /** The container's state, or undefined if runsc does not know it. */
  state(id: string): Promise<RunscState | undefined>;
  list(): Promise<string[]>;
  /** Runs a command in the container (development/diagnostics; the agent is the exec path). */
  exec(id: string, argv: readonly string[], timeoutMs?: number): Promise<{ stdout: string; code: number }>;
}

export interface RunscState {
  id: string;
  /** "created" | "running" | "paused" | "stopped" */
  status: string;
  pid: number;
}

export interface LaunchOptions {
  /** cgroup.procs files the launcher writes its pid into before exec'ing runsc. */
  cgroupProcs: readonly string[];
  /** runsc's stdout/stderr (and the container's, until the agent takes over logging). */
  logFile: string;
  timeoutMs?: number;
  /** Global flags of this sandbox only (its image's runsc settings), after the engine's own. */
  flags?: readonly string[];
}

export interface RunscOptions {
  path: string;
  /** tini (Debian package `tini`), used as the sandbox's reaping parent. */
  tiniPath: string;
  root: string;
  platform: "ptrace" | "systrap";
  /** Checkpoint image compression: "none" (default; memory is mostly incompressible and
   * flate costs CPU both ways) or "flate-best-speed". */
  compression?: "none" | "flate-best-speed";
  /** Extra global flags (e.g. "--debug"). */
  extraFlags?: readonly string[];
  /**
   * Bytes of runsc and container output kept per launch (default 4 MiB). A log over the cap is
   * rotated to `<log>.1` at the next launch, so a sandbox's logs stay under 4 × the cap.
   */
  logCapBytes?: number;
}

export const DEFAULT_LOG_CAP_BYTES = 4 * 1024 * 1024;

/** Renames a log over `cap` bytes to `<log>.1` (replacing the previous one). */
function rotateLog(file: string, cap: number): void {
  try {
    if (statSync(file).size > cap) renameSync(file, `${file}.1`);
  } catch {
    // no log yet
  }
}

export class RunscError extends Error {
  override readonly name = "RunscError";
}

// The launcher runs under `tini -s` (a child subreaper) and stays alive as the sandbox's parent
// after `runsc run --detach` returns: when the sandbox dies, tini reaps it at once. Without it
// the orphaned sandbox waits for the host's PID 1 to reap it (about 1.5 s on these machines,
// where PID 1 reaps lazily), and `runsc delete` polls until then.
// Positional: the log cap in bytes, a fifo path, cgroup.procs files, "--", then the runsc
// argv. The launcher (and tini) join the cgroups first; runsc's exit status is written to fd 3,
// then the launcher idles. It resets the OOM score the vmm's unit gave it, so the kernel's OOM
// killer picks a sandbox before a service.
// Log cap (finding #5): the sandbox inherits runsc's stdio, and sandbox root can write to it
// (/proc/1/fd/2) without end. So runsc writes into a fifo whose reader, a child of the
// launcher in the same cgroup, appends the first <cap> bytes to the log and discards the rest;
// it keeps reading, so writers never block, and dies with the sandbox.
const LAUNCHER = [
  'cap="$1"; fifo="$2"; shift 2',
  // The services run with OOMScoreAdjust=-900 (children inherit it); sandboxes must not.
  "echo 0 > /proc/self/oom_score_adj || true",
  'while [ "$1" != "--" ]; do { echo $PPID > "$1" && echo $$ > "$1"; } || { echo 97 >&3; exit 97; }; shift; done; shift',
  'rm -f "$fifo" && mkfifo -m 600 "$fifo" || { echo 96 >&3; exit 96; }',
  '{ head -c "$cap"; exec cat >/dev/null; } <"$fifo" 3>&- &',
  'exec >"$fifo" 2>&1; rm -f "$fifo"',
  'unshare --mount --propagation private /bin/sh -c \'mount -t tmpfs -o size=4k bhatti-netfix /proc/sys/net || exit 98; exec "$@"\' launcher "$@" 3>&-',
  "rc=$?; echo $rc >&3; exec 3>&-",
  '[ "$rc" = 0 ] || exit "$rc"',
  "exec sleep infinity",
].join("\n");

/** The last `max` bytes of `file` after offset `from` (reads only those). */
export function readTail(file: string, from: number, max = 8192): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    const start = Math.max(from, size - max);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString("utf8").trim();
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function createRunsc(options: RunscOptions): Runsc {
  mkdirSync(options.root, { recursive: true, mode: 0o700 });
  const globalFlags = [
    `--root=${options.root}`,
    `--platform=${options.platform}`,
    "--network=sandbox",
    "--net-disconnect-ok",
    "--overlay2=none",
    ...(options.extraFlags ?? []),
  ];
  const call = async (args: string[], timeoutMs = 30_000, flags: readonly string[] = []) => {
    try {
      return await runCommand(options.path, [...globalFlags, ...flags, ...args], { timeoutMs });
    } catch (e) {
      throw new RunscError(e instanceof Error ? e.message : String(e), { cause: e });
    }
  };

  const launch = (args: string[], launchOptions: LaunchOptions): Promise<void> =>
    new Promise((resolve, reject) => {
      const cap = options.logCapBytes ?? DEFAULT_LOG_CAP_BYTES;
      rotateLog(launchOptions.logFile, cap);
      const fd = openSync(launchOptions.logFile, "a", 0o600);
      const offset = fstatSync(fd).size;
      const child = spawn(
        options.tiniPath,
        [
          "-s",
          "--",
          "/bin/sh",
          "-c",
          LAUNCHER,
          "launcher",
          String(cap),
          `${launchOptions.logFile}.fifo`,
          ...launchOptions.cgroupProcs,
          "--",
          options.path,
          ...globalFlags,
          ...(launchOptions.flags ?? []),
          ...args,
        ],
        { stdio: ["ignore", fd, fd, "pipe"], detached: true },
      );
      closeSync(fd);
      let status = "";
      let settled = false;
      const finish = (error: Error | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        status3.destroy();
        child.unref();
        if (error) reject(error);
        else resolve();
      };
      const fail = (why: string) => {
        const tail = readTail(launchOptions.logFile, offset);
        finish(new RunscError(`runsc ${args[0]} failed (${why})${tail ? `: ${tail}` : ""}`));
      };
      const status3 = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
      status3.on("data", (d: Buffer) => {
        status += d.toString();
        if (!status.includes("\n")) return;
        const code = Number(status.trim());
        if (code === 0) finish(undefined);
        else
          fail(
            code === 97
              ? "cannot join the sandbox cgroup"
              : code === 96
                ? "cannot create the log fifo"
                : code === 98
                  ? "cannot hide /proc/sys/net"
                  : `exited ${code}`,
          );
      });
      status3.on("error", () => undefined);
      const timer = setTimeout(() => {
        try {
          process.kill(-(child.pid ?? 0), "SIGKILL");
        } catch {
          // already gone
        }
        fail("timed out");
      }, launchOptions.timeoutMs ?? 60_000);
      child.once("error", (e) => fail(e.message));
      child.once("exit", (code, signal) => fail(signal ? `killed by ${signal}` : `launcher exited ${code}`));
    });

  return {
    path: options.path,
    platform: options.platform,
    root: options.root,
    async version() {
      const { stdout } = await runCommand(options.path, ["--version"], { timeoutMs: 10_000 });
      return /runsc version (\S+)/.exec(stdout)?.[1] ?? stdout.trim();
    },
    run: (id, bundle, l) => launch(["run", "--detach", `--bundle=${bundle}`, id], l),
    restore: (id, bundle, imagePath, l) =>
      launch(["restore", "--detach", `--image-path=${imagePath}`, `--bundle=${bundle}`, id], l),
    pause: async (id) => void (await call(["pause", id])),
    resume: async (id) => void (await call(["resume", id])),
    // The same global flags as the run: gVisor requires them for a checkpoint.
    checkpoint: async (id, imagePath, checkpointOptions = {}) =>
      void (await call(
        [
          "checkpoint",
          `--image-path=${imagePath}`,
          `--compression=${options.compression ?? "none"}`,
          ...(checkpointOptions.leaveRunning === true ? ["--leave-running"] : []),
          id,
        ],
        300_000,
        checkpointOptions.flags ?? [],
      )),
    async delete(id) {
      try {
        await call(["delete", "--force", id]);
      } catch (e) {
        const text = e instanceof Error ? e.message : String(e);
        if (/does not exist|not found|no such/i.test(text)) return;
        throw e;
      }
    },
    async state(id) {
      try {
        const { stdout } = await call(["state", id], 10_000);
        const s = JSON.parse(stdout) as { id: string; status: string; pid: number };
        return { id: s.id, status: s.status, pid: s.pid };
      } catch (e) {
        const text = e instanceof Error ? e.message : String(e);
        if (/does not exist|not found|no such/i.test(text)) return undefined;
        throw e;
      }
    },
    async list() {
      const { stdout } = await call(["list", "--quiet"], 10_000);
      return stdout.split("\n").filter((l) => l.trim().length > 0);
    },
    async exec(id, argv, timeoutMs = 30_000) {
      try {
        const { stdout } = await runCommand(options.path, [...globalFlags, "exec", id, ...argv], {
          timeoutMs,
        });
        return { stdout, code: 0 };
      } catch (e) {
        if (e instanceof CommandError && e.exitCode !== null) return { stdout: e.stdout, code: e.exitCode };
        throw e;
      }
    },
  };
}
