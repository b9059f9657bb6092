import { connect } from "node:net";
import { rmSync } from "node:fs";

/** Socket paths are limited to 107 bytes by the kernel (sun_path). */
export const MAX_SOCKET_PATH_BYTES = 107;

export class SocketInUseError extends Error {
  override readonly name = "SocketInUseError";
  constructor(readonly socketPath: string) {
    super(`${socketPath} is in use by a running process; refusing to take it over`);
  }
}

/** Resolves true if something accepts connections on the socket path. */
export function isSocketLive(socketPath: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(socketPath);
    const done = (live: boolean) => {
      sock.destroy();
      resolve(live);
    };
    sock.setTimeout(timeoutMs, () => done(true)); // accepted but silent still counts as live
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/**
 * Makes the path free for listen(): a stale file (left by a killed process) is removed,
 * a live socket is never touched and raises SocketInUseError.
 */
export async function reclaimSocketPath(socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
  }
  if (await isSocketLive(socketPath)) throw new SocketInUseError(socketPath);
  rmSync(socketPath, { force: true });
}
