// The sudo shim's side of the sudo socket: one EXEC_REQ, then the caller's stdio relayed
// byte for byte until EXIT. Piped mode keeps stdout and stderr apart and passes stdin's EOF
// on as a half-close; TTY mode puts the caller's terminal in raw mode and forwards its size.
import { spawnSync } from "node:child_process";
import { connect, type Socket } from "node:net";
import {
  FrameReader,
  FrameType,
  MAX_PAYLOAD_SIZE,
  decodeExitPayload,
  encodeFrame,
  encodeJsonFrame,
  encodeResizePayload,
  encodeSignalPayload,
  type ExecRequest,
} from "@bhatti/agent-protocol";
import type { SudoCommand } from "./sudo-request.js";

/** The socket is missing or nobody listens: the sandbox has no sudo channel. */
export class SudoUnavailableError extends Error {
  override readonly name = "SudoUnavailableError";
}

/** The agent refused or could not start the command (its ERROR text). */
export class SudoAgentError extends Error {
  override readonly name = "SudoAgentError";
}

/** Signals the caller may get that belong to the command (a TTY's ^C arrives as a byte). */
const FORWARDED_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

export interface RelayStdio {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** Runs `command` as root through the agent; resolves with its exit code. */
export async function relayThroughAgent(
  socketPath: string,
  command: SudoCommand,
  tty: boolean,
  stdio: RelayStdio = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const socket = await connectSocket(socketPath);
  const reader = new FrameReader(socket);
  const send = (type: number, payload?: Uint8Array | string) =>
    socket.destroyed || socket.writableEnded ? true : socket.write(encodeFrame(type, payload));

  const request: ExecRequest = { argv: command.argv, env: command.env, cwd: command.cwd };
  if (tty) {
    request.tty = true;
    request.rows = stdio.stdout.rows || 24;
    request.cols = stdio.stdout.columns || 80;
  }
  socket.write(encodeJsonFrame(FrameType.EXEC_REQ, request));

  const cleanups: Array<() => void> = [];
  const forward = (signal: NodeJS.Signals) => send(FrameType.SIGNAL, encodeSignalPayload(signal));
  for (const signal of FORWARDED_SIGNALS) {
    process.on(signal, forward);
    cleanups.push(() => process.off(signal, forward));
  }
  if (tty) {
    stdio.stdin.setRawMode(true);
    cleanups.push(() => stdio.stdin.setRawMode(false));
    disableOutputProcessing(stdio.stdin);
    const onResize = () =>
      send(FrameType.RESIZE, encodeResizePayload({ rows: stdio.stdout.rows, cols: stdio.stdout.columns }));
    stdio.stdout.on("resize", onResize);
    cleanups.push(() => stdio.stdout.off("resize", onResize));
  }
  cleanups.push(pumpStdin(stdio.stdin, socket, send, tty));

  // A reader gone away (`| head`) means the command's output is unwanted: it gets SIGPIPE, as
  // it would writing to that pipe itself.
  let stdoutBroken = false;
  let stderrBroken = false;
  const onStdoutError = () => {
    if (!stdoutBroken) forward("SIGPIPE");
    stdoutBroken = true;
  };
  const onStderrError = () => {
    stderrBroken = true;
  };
  stdio.stdout.on("error", onStdoutError);
  stdio.stderr.on("error", onStderrError);
  cleanups.push(() => {
    stdio.stdout.off("error", onStdoutError);
    stdio.stderr.off("error", onStderrError);
  });

  try {
    for (;;) {
      let frame: Awaited<ReturnType<typeof reader.read>>;
      try {
        frame = await reader.read();
      } catch (err) {
        throw new SudoAgentError(`lost the connection to the bhatti sudo service: ${(err as Error).message}`);
      }
      if (frame === null) throw new SudoAgentError("the bhatti sudo service closed the connection");
      switch (frame.type) {
        case FrameType.STDOUT:
          if (!stdoutBroken) await write(stdio.stdout, frame.payload);
          break;
        case FrameType.STDERR:
          if (!stderrBroken) await write(stdio.stderr, frame.payload);
          break;
        case FrameType.EXIT:
          return decodeExitPayload(frame.payload) ?? 1;
        case FrameType.ERROR:
          throw new SudoAgentError(frame.payload.toString("utf8"));
        default:
          // KEEPALIVE and anything newer.
          break;
      }
    }
  } finally {
    for (const cleanup of cleanups.reverse()) cleanup();
    socket.destroy();
  }
}

/**
 * libuv's raw mode leaves output processing on (ONLCR), so the remote terminal's "\r\n" would
 * arrive as "\r\r\n" and a full-screen program's bare "\n" (cursor down) as "\r\n". Node has
 * no termios binding, so stty(1) clears OPOST on our terminal; setRawMode(false) later
 * restores the attributes libuv saved before any of this. Without stty the terminal keeps
 * ONLCR: still usable, with those small glitches.
 */
function disableOutputProcessing(stdin: NodeJS.ReadStream): void {
  spawnSync("stty", ["-opost"], { stdio: [stdin, "ignore", "ignore"], timeout: 5_000 });
}

function connectSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path, allowHalfOpen: true });
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {
        // Surfaces through the frame reader.
      });
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      socket.destroy();
      if (err.code === "ENOENT" || err.code === "ECONNREFUSED" || err.code === "ENOTSOCK") {
        reject(new SudoUnavailableError("bhatti sudo service is not available in this sandbox"));
      } else {
        reject(new SudoUnavailableError(`bhatti sudo service: ${err.message}`));
      }
    });
  });
}

/**
 * Caller's stdin → STDIN frames, paused while the socket is full. Piped mode passes EOF on as
 * a half-close (the command sees EOF); a TTY has no EOF of its own (^D is a byte). Returns
 * a function that stops reading.
 */
function pumpStdin(
  stdin: NodeJS.ReadStream,
  socket: Socket,
  send: (type: number, payload?: Uint8Array) => boolean,
  tty: boolean,
): () => void {
  const onData = (chunk: Buffer) => {
    let ok = true;
    for (let at = 0; at < chunk.byteLength; at += MAX_PAYLOAD_SIZE) {
      ok = send(FrameType.STDIN, chunk.subarray(at, at + MAX_PAYLOAD_SIZE));
    }
    if (!ok) {
      stdin.pause();
      socket.once("drain", () => stdin.resume());
    }
  };
  const onEnd = () => {
    if (!tty && !socket.destroyed) socket.end();
  };
  stdin.on("data", onData);
  stdin.once("end", onEnd);
  // EIO/EBADF on a vanished terminal or a closed descriptor: as good as EOF.
  stdin.once("error", onEnd);
  return () => {
    stdin.off("data", onData);
    stdin.off("end", onEnd);
    stdin.pause();
  };
}

/** Writes one chunk, waiting for the stream to drain when it is full (backpressure). */
function write(stream: NodeJS.WriteStream, chunk: Buffer): Promise<void> {
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("error", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("error", done);
    stream.on("close", done);
  });
}
