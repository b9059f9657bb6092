import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import type { IPty } from "node-pty";
import type { CommandSpec } from "../exec/command-spec.js";
import { exitCodeOf } from "../exec/command-spec.js";

/** The process behind a session: a PTY child or a piped child. */
export interface SessionProcess {
  readonly pid: number;
  write(data: Uint8Array): void;
  resize(rows: number, cols: number): void;
  /** Stop reading output (backpressure from a slow client). */
  pause(): void;
  resume(): void;
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once, after all output has been delivered, with the EXIT code. */
  onExit(listener: (code: number) => void): void;
}

type NodePty = typeof import("node-pty");
let nodePty: NodePty | undefined;

/** node-pty is loaded on first use: an agent that never opens a TTY never pays for it. */
function loadNodePty(): NodePty {
  nodePty ??= createRequire(import.meta.url)("node-pty") as NodePty;
  return nodePty;
}

/** How long output may stay quiet after the exit before a PTY still held open is closed anyway. */
const PTY_HELD_OPEN_QUIET_MS = 1_000;

/**
 * node-pty (1.1.0, unixTerminal.js) destroys the PTY master 200 ms after the child's exit if the
 * master has not reached EOF by then, throwing away output that is still in the kernel buffer.
 * On a loaded machine the last bytes a child wrote before exiting routinely arrive later than
 * that (the PTY flip buffer is pushed by a kworker; the event loop may be descheduled), so a
 * session's final output went missing. The master reports EIO only once the child side is closed
 * and every byte has been read, so that is the signal to wait for. The early destroy is deferred;
 * only if a background process keeps the child side open (no EIO ever comes) is the master closed,
 * after the output has been quiet for PTY_HELD_OPEN_QUIET_MS.
 */
function deferEarlyDestroy(pty: IPty): void {
  const socket = (pty as unknown as { _socket?: Socket })._socket;
  if (socket === undefined || typeof socket.destroy !== "function") return;
  const destroy = socket.destroy.bind(socket);
  let fallback: NodeJS.Timeout | undefined;
  const armFallback = () => {
    if (fallback !== undefined) clearTimeout(fallback);
    fallback = setTimeout(() => {
      // A paused master (a slow client) is not quiet: its output is waiting to be read.
      if (socket.isPaused()) armFallback();
      else destroy();
    }, PTY_HELD_OPEN_QUIET_MS);
  };
  socket.destroy = ((error?: Error) => {
    // Stream-internal calls (EIO, end of stream) and any call once reading is over go through.
    if (error !== undefined || socket.destroyed || socket.readableEnded) return destroy(error);
    socket.on("data", armFallback);
    armFallback();
    return socket;
  }) as Socket["destroy"];
  socket.once("close", () => {
    if (fallback !== undefined) clearTimeout(fallback);
  });
}

export function spawnPtyProcess(spec: CommandSpec, rows: number, cols: number): SessionProcess {
  const pty: IPty = loadNodePty().spawn(spec.path, spec.args, {
    name: spec.env["TERM"] ?? "xterm-256color",
    cols,
    rows,
    cwd: spec.cwd,
    env: spec.env,
    // Raw bytes: a UTF-8 sequence split across reads must not be mangled.
    encoding: null,
    ...spec.credentials,
  } as Parameters<NodePty["spawn"]>[2]);
  deferEarlyDestroy(pty);
  return {
    pid: pty.pid,
    write: (data) =>
      pty.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength) as unknown as string),
    resize: (r, c) => {
      try {
        pty.resize(Math.max(1, c), Math.max(1, r));
      } catch {
        // The PTY is already closed.
      }
    },
    pause: () => pty.pause(),
    resume: () => pty.resume(),
    onData: (listener) => {
      pty.onData((data) => listener(data as unknown as Buffer));
    },
    onExit: (listener) => {
      pty.onExit(({ exitCode, signal }) => listener(exitCodeOf(exitCode, signal ?? null)));
    },
  };
}

/** Pipes instead of a PTY; stderr is delivered as stdout, like a merged stream. */
export async function spawnPipedProcess(spec: CommandSpec): Promise<SessionProcess> {
  const child = spawn(spec.path, spec.args, {
    argv0: spec.file,
    cwd: spec.cwd,
    env: spec.env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
    ...spec.credentials,
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  if (child.pid === undefined) throw new Error(`spawn ${spec.file}: no pid`);
  child.stdin.on("error", () => {
    // The child closed its stdin.
  });
  const outputs = [child.stdout, child.stderr];
  return {
    pid: child.pid,
    write: (data) => {
      child.stdin.write(data);
    },
    resize: () => {
      // No terminal to resize.
    },
    pause: () => {
      for (const s of outputs) s.pause();
    },
    resume: () => {
      for (const s of outputs) s.resume();
    },
    onData: (listener) => {
      for (const s of outputs) s.on("data", listener);
    },
    onExit: (listener) => {
      child.once("close", (code, signal) => listener(exitCodeOf(code, signal)));
    },
  };
}
