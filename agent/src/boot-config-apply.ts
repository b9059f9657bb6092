import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { DEFAULT_SANDBOX_USER, type AgentBootConfig, type AgentBootUser } from "@bhatti/agent-protocol";
import type { AgentLogger } from "./logger.js";

export class BootConfigError extends Error {
  override readonly name = "BootConfigError";
}

/** Reads and checks the boot config, then hides it from the sandbox user. */
export function loadBootConfig(path: string, log: AgentLogger): AgentBootConfig {
  let config: AgentBootConfig;
  try {
    config = JSON.parse(readFileSync(path, "utf8")) as AgentBootConfig;
  } catch (err) {
    throw new BootConfigError(`read boot config ${path}: ${(err as Error).message}`);
  }
  if (config === null || typeof config !== "object")
    throw new BootConfigError("boot config must be a JSON object");
  if (typeof config.token !== "string") throw new BootConfigError("boot config: token must be a string");
  if (config.sudo !== undefined && config.sudo !== null) {
    const socket = (config.sudo as { socket?: unknown }).socket;
    if (typeof socket !== "string" || !socket.startsWith("/")) {
      throw new BootConfigError("boot config: sudo.socket must be an absolute path");
    }
  }
  hideBootConfig(path, log);
  return config;
}

/** The token and secrets must not stay readable: remove the file, or make it root-only. */
function hideBootConfig(path: string, log: AgentLogger): void {
  try {
    unlinkSync(path);
    return;
  } catch (err) {
    log.warn("cannot remove boot config; making it root-only", { path, error: err as Error });
  }
  try {
    chownSync(path, 0, 0);
    chmodSync(path, 0o600);
  } catch (err) {
    log.error("boot config stays readable", { path, error: err as Error });
  }
}

export function bootUser(config: AgentBootConfig): AgentBootUser {
  return { ...DEFAULT_SANDBOX_USER, ...config.user };
}

/** Hostname, the user's home, injected files. Each step is best effort and logged. */
export function applyBootConfig(config: AgentBootConfig, log: AgentLogger): void {
  const user = bootUser(config);
  if (config.hostname !== undefined && config.hostname !== "" && hostname() !== config.hostname) {
    // No sethostname(2) binding in Node; the engine should also set the OCI hostname.
    const result = spawnSync("hostname", [config.hostname], { stdio: "ignore", timeout: 2_000 });
    if (result.status !== 0) log.warn("cannot set hostname", { hostname: config.hostname });
  }
  if (!existsSync(user.home)) {
    try {
      mkdirSync(user.home, { recursive: true, mode: 0o755 });
      chownSync(user.home, user.uid, user.gid);
    } catch (err) {
      log.warn("cannot create home directory", { home: user.home, error: err as Error });
    }
  }
  for (const file of config.files ?? []) {
    try {
      const mode = file.mode !== undefined && file.mode !== "" ? Number.parseInt(file.mode, 8) : 0o644;
      const parent = dirname(file.path);
      if (!existsSync(parent)) {
        mkdirSync(parent, { recursive: true, mode: 0o755 });
        chownSync(parent, user.uid, user.gid);
      }
      writeFileSync(file.path, Buffer.from(file.content, "base64"), { mode });
      chmodSync(file.path, mode);
      chownSync(file.path, user.uid, user.gid);
    } catch (err) {
      log.error("cannot write boot file", { path: file.path, error: err as Error });
    }
  }
}

/** Config env with secrets layered on top: both reach every command. */
export function bootEnv(config: AgentBootConfig): Record<string, string> {
  return { ...(config.env ?? {}), ...(config.secrets ?? {}) };
}

/** The sudo channel's socket path, or undefined when the boot config leaves it off. */
export function bootSudoSocket(config: AgentBootConfig): string | undefined {
  return config.sudo?.socket;
}
