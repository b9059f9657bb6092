import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { constants } from "node:os";
import { isAbsolute, join } from "node:path";
import type { ExecRequest } from "@bhatti/agent-protocol";
import {
  ROOT_IDENTITY,
  buildCommandEnv,
  buildSudoCommandEnv,
  credentialsFor,
  defaultCwd,
  isDirectory,
  type ExecIdentity,
} from "../identity.js";

/**
 * The agent's defaults a command is resolved against. Declared here, and extended by AgentContext,
 * so that resolving a command does not depend on the whole agent (that import closed a cycle
 * agent-context → session-registry → session-process → command-spec → agent-context).
 */
export interface ExecDefaults {
  /** Commands run as this user unless the request asks for root and `allowRoot` is set. */
  user: ExecIdentity;
  allowRoot: boolean;
  /** Default working directory. */
  workdir: string;
  /** Environment inherited by every command before the defaults (standalone mode: the agent's own). */
  baseEnv: Readonly<Record<string, string | undefined>>;
  /** Boot-config env plus secrets. */
  configEnv: Readonly<Record<string, string>>;
}

/** What to start, as whom, where: resolved once from an EXEC_REQ. */
export interface CommandSpec {
  /** argv[0] as requested. */
  file: string;
  /** The executable it resolved to (PATH search done by the agent, like Go's LookPath). */
  path: string;
  args: string[];
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  identity: ExecIdentity;
  credentials: { uid: number; gid: number } | undefined;
  /** One-shot exec: stdin is /dev/null, not a stream from the host (`stdin_null`). */
  stdinNull: boolean;
}

/** A request that cannot be started; the text goes back in an ERROR frame. */
export class CommandSpecError extends Error {
  override readonly name = "CommandSpecError";
}

/**
 * Which door a request came through. `control`: the TCP control port (the sandbox user, or
 * root when asked and allowed; layered env). `sudo`: the local sudo socket (always root; the
 * request's env is the whole env, see buildSudoCommandEnv).
 */
export type ExecChannel = "control" | "sudo";

export function resolveCommandSpec(
  ctx: ExecDefaults,
  req: ExecRequest,
  channel: ExecChannel = "control",
): CommandSpec {
  if (channel === "control" && req.root === true && !ctx.allowRoot) {
    throw new CommandSpecError("root exec is not allowed in this sandbox");
  }
  const identity = channel === "sudo" || req.root === true ? ROOT_IDENTITY : ctx.user;
  const requested = typeof req.cwd === "string" && req.cwd !== "";
  // defaultCwd only returns a directory it checked (or "/"): one stat(2) less per exec.
  const cwd = requested ? (req.cwd as string) : defaultCwd(ctx.workdir, identity);
  if (requested && !isDirectory(cwd)) {
    throw new CommandSpecError(`start: chdir ${cwd}: no such file or directory`);
  }
  const argv = req.argv.map(String);
  const file = argv[0]!;
  const env =
    channel === "sudo"
      ? buildSudoCommandEnv(req.env)
      : buildCommandEnv(ctx.baseEnv, identity, ctx.configEnv, req.env);
  const path = findExecutable(file, env["PATH"] ?? "", cwd);
  if (path === undefined) {
    throw new CommandSpecError(
      file.includes("/")
        ? `start: fork/exec ${file}: no such file or directory`
        : `start: exec: "${file}": executable file not found in $PATH`,
    );
  }
  return {
    file,
    path,
    args: argv.slice(1),
    argv,
    env,
    cwd,
    identity,
    credentials: credentialsFor(identity),
    stdinNull: req.stdin_null === true,
  };
}

/**
 * Resolves `file` like execvp, but skipping unusable PATH entries instead of failing on
 * the first EACCES: a path containing "/" as is (relative to cwd), else each PATH entry.
 */
export function findExecutable(file: string, searchPath: string, cwd: string): string | undefined {
  // A hit is remembered and re-checked with one access(2), instead of walking PATH again.
  const key = file.includes("/") && !isAbsolute(file) ? undefined : `${searchPath}\0${file}`;
  const cached = key === undefined ? undefined : resolvedExecutables.get(key);
  if (cached !== undefined) {
    try {
      accessSync(cached, fsConstants.X_OK);
      return cached;
    } catch {
      resolvedExecutables.delete(key!);
    }
  }
  const found = searchExecutable(file, searchPath, cwd);
  if (found !== undefined && key !== undefined) {
    if (resolvedExecutables.size >= 512) resolvedExecutables.clear();
    resolvedExecutables.set(key, found);
  }
  return found;
}

const resolvedExecutables = new Map<string, string>();

function searchExecutable(file: string, searchPath: string, cwd: string): string | undefined {
  const candidates = file.includes("/")
    ? [isAbsolute(file) ? file : join(cwd, file)]
    : searchPath
        .split(":")
        .map((dir) => join(dir === "" ? cwd : isAbsolute(dir) ? dir : join(cwd, dir), file));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The ERROR text for a spawn failure, in the words v1 (Go's os/exec) used. */
export function spawnErrorText(file: string, err: NodeJS.ErrnoException): string {
  if (err.code === "ENOENT") {
    return file.includes("/")
      ? `start: fork/exec ${file}: no such file or directory`
      : `start: exec: "${file}": executable file not found in $PATH`;
  }
  if (err.code === "EACCES") return `start: fork/exec ${file}: permission denied`;
  return `start: ${err.message}`;
}

/** EXIT code of a finished process: its code, or 128 + the signal number. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null | number): number {
  if (code !== null && code !== undefined && (signal === null || signal === 0 || signal === undefined))
    return code;
  if (typeof signal === "number" && signal > 0) return 128 + signal;
  if (typeof signal === "string") {
    const signo = (constants.signals as Record<string, number>)[signal];
    if (signo !== undefined) return 128 + signo;
  }
  return code ?? 1;
}

/**
 * The signal a SIGNAL frame names, if this platform knows it (KILL semantics stay with the
 * KILL frame, but SIGKILL by name is honoured too).
 */
export function signalFromFrame(name: string | undefined): NodeJS.Signals | undefined {
  if (name === undefined) return undefined;
  return (constants.signals as Record<string, number>)[name] !== undefined
    ? (name as NodeJS.Signals)
    : undefined;
}

/** Sends `signal` to the process group led by `pid`; ignores a group that is already gone. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: every member has exited.
  }
}
