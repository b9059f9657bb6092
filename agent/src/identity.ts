import { existsSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";

/** Who a command runs as. */
export interface ExecIdentity {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export const ROOT_IDENTITY: ExecIdentity = { name: "root", uid: 0, gid: 0, home: "/root" };

/** One /etc/passwd line, with the login shell (the sudo shim needs it). */
export interface PasswdEntry extends ExecIdentity {
  shell: string;
}

/** The first passwd entry with this name or uid; undefined when there is none (or no file). */
export function findPasswdEntry(
  by: { name: string } | { uid: number },
  passwdPath = "/etc/passwd",
): PasswdEntry | undefined {
  let text: string;
  try {
    text = readFileSync(passwdPath, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 6) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    if ("name" in by ? fields[0] !== by.name : uid !== by.uid) continue;
    return { name: fields[0]!, uid, gid, home: fields[5] || "/", shell: fields[6]?.trim() || "/bin/sh" };
  }
  return undefined;
}

/** Looks a user up in `<root>/etc/passwd` (no NSS: images may have no libc at all). */
export function lookupUser(name: string, passwdPath = "/etc/passwd"): ExecIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(passwdPath, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields[0] !== name || fields.length < 6) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
    return { name, uid, gid, home: fields[5] || "/" };
  }
  return undefined;
}

/** A user by name, or numerically as "uid" or "uid:gid" (named from passwd when listed there). */
export function resolveUser(spec: string, passwdPath = "/etc/passwd"): ExecIdentity | undefined {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(spec);
  if (numeric === null) return lookupUser(spec, passwdPath);
  const uid = Number(numeric[1]);
  const listed = lookupUserById(uid, passwdPath);
  const gid = numeric[2] !== undefined ? Number(numeric[2]) : (listed?.gid ?? uid);
  return { name: listed?.name ?? String(uid), uid, gid, home: listed?.home ?? "/" };
}

function lookupUserById(uid: number, passwdPath: string): ExecIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(passwdPath, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 6 && Number(fields[2]) === uid && fields[0] !== undefined) {
      return lookupUser(fields[0], passwdPath);
    }
  }
  return undefined;
}

/** The identity of the agent process itself (standalone mode without --user). */
export function currentIdentity(): ExecIdentity {
  const info = userInfo();
  return { name: info.username, uid: info.uid, gid: info.gid, home: process.env["HOME"] ?? info.homedir };
}

/** The agent's own uid: it never changes identity, so one getuid(2) for its life. */
const SELF_UID = process.getuid?.();

/**
 * spawn() options that switch to `identity`, or none when the agent already runs as it
 * (an unprivileged agent cannot switch, and need not).
 */
export function credentialsFor(identity: ExecIdentity): { uid: number; gid: number } | undefined {
  if (SELF_UID === identity.uid) return undefined;
  return { uid: identity.uid, gid: identity.gid };
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The working directory of a command that names none: workdir, else home, else "/". */
export function defaultCwd(workdir: string, identity: ExecIdentity): string {
  if (isDirectory(workdir)) return workdir;
  if (existsSync(identity.home) && isDirectory(identity.home)) return identity.home;
  return "/";
}

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The environment of a command, in layers where a later one wins: the inherited base
 * (standalone mode only), the defaults (PATH, TERM, HOME, USER, LANG), the boot config's env
 * and secrets, then the request's env.
 */
export function buildCommandEnv(
  base: Readonly<Record<string, string | undefined>>,
  identity: ExecIdentity,
  configEnv: Readonly<Record<string, string>>,
  requestEnv: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  env["PATH"] ??= DEFAULT_PATH;
  env["TERM"] = "xterm-256color";
  env["HOME"] = identity.home;
  env["USER"] = identity.name;
  env["LOGNAME"] = identity.name;
  env["LANG"] ??= "en_US.UTF-8";
  Object.assign(env, configEnv);
  if (requestEnv !== undefined) {
    for (const [k, v] of Object.entries(requestEnv)) if (typeof v === "string") env[k] = v;
  }
  return env;
}

/**
 * The environment of a command from the sudo channel: the sudo shim has already built the
 * whole environment the way sudo does (reset, -E, SUDO_*), so the request's env is taken as
 * is over root's bare minimum. The boot config's env and secrets are not added: sudo resets
 * the environment, and with -E the caller's copy of them comes along anyway.
 */
export function buildSudoCommandEnv(
  requestEnv: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: DEFAULT_PATH,
    HOME: ROOT_IDENTITY.home,
    USER: ROOT_IDENTITY.name,
    LOGNAME: ROOT_IDENTITY.name,
  };
  if (requestEnv !== undefined) {
    for (const [k, v] of Object.entries(requestEnv)) if (typeof v === "string") env[k] = v;
  }
  return env;
}
