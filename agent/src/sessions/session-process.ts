import { spawn } from "node:child_process";
import { createRequire } from "node:module";
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
