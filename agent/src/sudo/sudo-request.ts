// What the sudo shim asks the agent to run: argv, environment and working directory, built
// from the invocation the way sudo(8) builds them with its default policy (env_reset).
import type { SudoRun } from "./sudo-options.js";

export interface SudoCaller {
  name: string;
  uid: number;
  gid: number;
  /** The caller's working directory. */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
}

export interface SudoTarget {
  name: string;
  home: string;
  /** The login shell from /etc/passwd. */
  shell: string;
}

export interface SudoCommand {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

/**
 * Debian's `secure_path`. Unlike sudo we keep the caller's PATH (users expect their PATH to
 * carry over), but add the sbin directories it lacks so `sudo useradd` works from a user's
 * Debian PATH, which has no sbin.
 */
export const SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Kept by env_reset, as in sudo's built-in env_keep list (locale, terminal, display, time
 * zone). HOME, USER, LOGNAME, SHELL, MAIL and the SUDO_* variables are set, not kept.
 */
const KEPT = new Set([
  "TERM",
  "COLORTERM",
  "COLORS",
  "LS_COLORS",
  "LANG",
  "LANGUAGE",
  "LINGUAS",
  "TZ",
  "DISPLAY",
  "XAUTHORITY",
  "XAUTHORIZATION",
  "PS1",
  "PS2",
  "HOSTNAME",
]);

/** Names sudo never passes on, even with -E (the dynamic loader's, and bash's function exports). */
function isUnsafe(name: string): boolean {
  return name.startsWith("LD_") || name.startsWith("BASH_FUNC_") || name === "IFS";
}

export function buildSudoCommand(run: SudoRun, caller: SudoCaller, target: SudoTarget): SudoCommand {
  const env: Record<string, string> = {};
  const keep = (name: string) => {
    const value = caller.env[name];
    if (value !== undefined && !isUnsafe(name)) env[name] = value;
  };
  if (run.preserveEnv === true && !run.login) {
    for (const name of Object.keys(caller.env)) keep(name);
  } else {
    for (const name of Object.keys(caller.env)) if (KEPT.has(name) || name.startsWith("LC_")) keep(name);
    if (Array.isArray(run.preserveEnv)) for (const name of run.preserveEnv) keep(name);
  }
  env["PATH"] = withSecurePath(caller.env["PATH"]);
  // -E keeps the caller's HOME (sudo's default without always_set_home); -H, -i and the reset
  // environment use the target's.
  if (run.setHome || run.login || run.preserveEnv !== true || env["HOME"] === undefined) {
    env["HOME"] = target.home;
  }
  env["USER"] = target.name;
  env["LOGNAME"] = target.name;
  env["SHELL"] = target.shell;
  env["MAIL"] = `/var/mail/${target.name}`;
  env["SUDO_USER"] = caller.name;
  env["SUDO_UID"] = String(caller.uid);
  env["SUDO_GID"] = String(caller.gid);

  let argv: string[];
  if (run.login || run.shell) {
    const shell = run.login ? target.shell : (nonEmpty(caller.env["SHELL"]) ?? target.shell);
    const flags = run.login ? ["-l"] : [];
    argv =
      run.command.length === 0 ? [shell, ...flags] : [shell, ...flags, "-c", escapeForShell(run.command)];
  } else {
    argv = [...run.command];
  }
  env["SUDO_COMMAND"] = argv.join(" ");
  Object.assign(env, run.assignments);

  const cwd = run.chdir ?? (run.login ? target.home : caller.cwd);
  return { argv, env, cwd };
}

/** The caller's PATH followed by the secure_path directories it does not already list. */
export function withSecurePath(path: string | undefined): string {
  const dirs = (path ?? "").split(":").filter((d) => d !== "");
  for (const dir of SECURE_PATH.split(":")) if (!dirs.includes(dir)) dirs.push(dir);
  return dirs.join(":");
}

/**
 * How sudo hands a command to `shell -c` for -i and -s: each argument with a backslash
 * before every character that is not alphanumeric, `_`, `-` or `$`, joined with spaces. So
 * `sudo -s echo '$HOME'` expands $HOME in root's shell, and `sudo -s 'ls /'` looks for a
 * command named "ls /", exactly as with sudo.
 */
export function escapeForShell(args: readonly string[]): string {
  return args.map((arg) => arg.replace(/[^A-Za-z0-9_$-]/gu, (c) => `\\${c}`)).join(" ");
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
