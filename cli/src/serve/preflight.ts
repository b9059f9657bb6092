import { createServer } from "node:net";
import {
  MAX_SOCKET_PATH_BYTES,
  SERVICE_NAMES,
  type ServerConfig,
  StartupError,
  ensureWritableDir,
  isSocketLive,
  parseListenAddress,
  serviceSocketPath,
} from "@bhatti/runtime";
import { setTimeout as sleep } from "node:timers/promises";
import { CliError } from "../cli-error.js";
import { supervisorLockPath } from "./supervisor-lock.js";

/** The state and socket dirs exist (created if needed) and are writable; socket paths fit. */
export function checkDirectories(config: ServerConfig): void {
  try {
    ensureWritableDir(config.state_dir, "state dir", 0o700);
    ensureWritableDir(config.socket_dir, "socket dir", 0o755);
  } catch (e) {
    if (e instanceof StartupError) {
      throw new CliError(
        e.message,
        "choose another directory with --state-dir / --socket-dir, or run as root",
      );
    }
    throw e;
  }
  const longest =
    [
      supervisorLockPath(config.socket_dir),
      ...SERVICE_NAMES.map((n) => serviceSocketPath(config.socket_dir, n)),
    ].sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a))[0] ?? "";
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH_BYTES) {
    throw new CliError(
      `socket dir ${config.socket_dir} is too long: ${longest} exceeds ${MAX_SOCKET_PATH_BYTES} bytes`,
      "use a shorter --socket-dir",
    );
  }
}

function tryListen(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (e: NodeJS.ErrnoException) => resolve(e));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** The gateway's address is valid and free. `waitMs` covers an old gateway that is still exiting. */
export async function checkListenAddress(config: ServerConfig, waitMs = 0): Promise<void> {
  let address: { host: string; port: number };
  try {
    address = parseListenAddress(config.listen);
  } catch (e) {
    throw new CliError((e as Error).message, "use host:port, e.g. --listen 127.0.0.1:8080");
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    const err = await tryListen(address.host, address.port);
    if (err === undefined) return;
    if (err.code === "EADDRINUSE" && Date.now() < deadline) {
      await sleep(100);
      continue;
    }
    const why =
      err.code === "EADDRINUSE"
        ? "address already in use"
        : err.code === "EADDRNOTAVAIL"
          ? "no such local address"
          : err.code === "EACCES"
            ? "permission denied"
            : err.message;
    throw new CliError(
      `cannot listen on ${config.listen}: ${why}`,
      "choose a free address with --listen HOST:PORT",
    );
  }
}

/**
 * Waits until no service socket in the dir answers. Processes of a `bhatti serve` that was
 * killed shut themselves down when it died; this gives them time to finish. Returns whether
 * any was found.
 */
export async function waitForOldServices(config: ServerConfig, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  let found = false;
  for (;;) {
    const live: string[] = [];
    for (const name of SERVICE_NAMES) {
      const path = serviceSocketPath(config.socket_dir, name);
      if (await isSocketLive(path, 200)) live.push(path);
    }
    if (live.length === 0) return found;
    found = true;
    if (Date.now() > deadline) {
      throw new CliError(
        `${live.join(", ")} ${live.length === 1 ? "is" : "are"} in use by processes not started by this bhatti serve`,
        "stop them (they belong to another bhatti installation or an earlier run) or use another --socket-dir",
      );
    }
    await sleep(100);
  }
}
