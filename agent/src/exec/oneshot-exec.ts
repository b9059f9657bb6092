import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { FrameType, decodeSignalPayload, type ExecRequest } from "@bhatti/agent-protocol";
import type { AgentContext } from "../agent-context.js";
import type { ControlConnection } from "../server/control-connection.js";
import {
  CommandSpecError,
  exitCodeOf,
  resolveCommandSpec,
  signalFromFrame,
  signalGroup,
  spawnErrorText,
  type ExecChannel,
} from "./command-spec.js";
import { type SpawnedCommand, SpawnerLostError } from "./resident-spawner.js";

const KEEPALIVE_INTERVAL_MS = 1_000;

/**
 * One-shot exec: EXEC_REQ → STDOUT/STDERR chunks → EXIT. While it runs the host may send
 * STDIN (a half-close of its side closes the child's stdin), KILL (SIGKILL to the group) or
 * SIGNAL (that signal to the group). If the host goes away before EXIT the group is
 * SIGKILLed: nobody can read the result.
 */
export async function handleOneShotExec(
  ctx: AgentContext,
  conn: ControlConnection,
  req: ExecRequest,
  channel: ExecChannel = "control",
): Promise<void> {
  const { sink, reader, socket } = conn;
  let spec: ReturnType<typeof resolveCommandSpec>;
  try {
    spec = resolveCommandSpec(ctx, req, channel);
  } catch (err) {
    if (err instanceof CommandSpecError) return sink.fail(err.message);
    throw err;
  }

  let child: ChildProcess | SpawnedCommand;
  try {
    // The resident spawner when it is up; Node's own spawn (a fork of Node) otherwise.
    child =
      (await ctx.spawner?.startCommand(spec)) ??
      spawn(spec.path, spec.args, {
        argv0: spec.file,
        cwd: spec.cwd,
        env: spec.env,
        stdio: [spec.stdinNull ? "ignore" : "pipe", "pipe", "pipe"],
        // setsid(): the child leads its own process group, so KILL reaches grandchildren.
        detached: true,
        ...spec.credentials,
      });
  } catch (err) {
    return sink.fail(startErrorText(spec.file, err));
  }
  const stdin: Writable | null = child.stdin;

  let finished = false;
  const done = new Promise<void>((resolve) => {
    child.once("error", (err: Error) => {
      if (finished) return;
      finished = true;
      sink.fail(startErrorText(spec.file, err));
      resolve();
    });
    // "close" fires after the process exited AND its stdout/stderr reached EOF, so every
    // output frame is queued before EXIT.
    child.once("close", (code: number | null, signal: NodeJS.Signals | number | null) => {
      if (finished) return;
      finished = true;
      const exit = exitCodeOf(code, signal);
      const report = () => {
        sink.sendExit(exit);
        sink.end();
        resolve();
      };
      if (req.sync === true) void flushFileSystems().then(report);
      else report();
    });
  });

  const pump = (stream: Readable | null, type: number) => {
    if (stream === null) return;
    stream.on("data", (chunk: Buffer) => {
      if (!sink.send(type, chunk)) {
        stream.pause();
        void sink.drained().then(() => stream.resume());
      }
    });
    // A spawner's stdio socket was read in paused mode (its header): make it flow.
    stream.resume();
  };
  pump(child.stdout, FrameType.STDOUT);
  pump(child.stderr, FrameType.STDERR);
  stdin?.on("error", () => {
    // EPIPE: the child closed its stdin; extra input is dropped.
  });

  const onHostGone = () => {
    if (!finished) signalGroup(child.pid, "SIGKILL");
  };
  socket.once("close", onHostGone);
  socket.once("error", onHostGone);
  // The host may have gone while the spawner started the command.
  if (socket.destroyed) onHostGone();

  // Host → child: STDIN and KILL until the host half-closes (or sends STDIN_EOF) or the command
  // ends. On a kept connection the input is read to its end whatever happens, so that the
  // connection's next request is not taken for this exec's input.
  const input = (async () => {
    for (;;) {
      let frame: Awaited<ReturnType<typeof reader.read>>;
      try {
        frame = await reader.read();
      } catch {
        onHostGone();
        return;
      }
      if (frame === null || (conn.reused && frame.type === FrameType.STDIN_EOF)) {
        stdin?.end();
        // A half-close (stdin EOF) and a vanished host look the same until we write:
        // probe with frames hosts ignore, so a dead host's command gets killed.
        const probe = setInterval(() => {
          if (finished) clearInterval(probe);
          else sink.send(FrameType.KEEPALIVE);
        }, KEEPALIVE_INTERVAL_MS);
        probe.unref();
        void done.then(() => clearInterval(probe));
        return;
      }
      if (frame.type === FrameType.STDIN) {
        // Input for a stdin the command already closed (or an exited command) is dropped.
        const open = stdin !== null && !stdin.destroyed && !stdin.writableEnded;
        if (open && frame.payload.byteLength > 0 && !stdin.write(frame.payload)) {
          await new Promise((resolve) => {
            stdin.once("drain", resolve);
            stdin.once("close", resolve);
          });
        }
      } else if (frame.type === FrameType.KILL) {
        signalGroup(child.pid, "SIGKILL");
      } else if (frame.type === FrameType.SIGNAL) {
        const signal = signalFromFrame(decodeSignalPayload(frame.payload));
        if (signal !== undefined && !finished) signalGroup(child.pid, signal);
      }
      // Other types are ignored, as in v1.
      if (finished && !conn.reused) return;
    }
  })();

  await done;
  if (conn.reused) await input;
  socket.off("close", onHostGone);
  socket.off("error", onHostGone);
}

/** ERROR text for a command that did not start, or whose spawner went away. */
function startErrorText(file: string, err: unknown): string {
  if (err instanceof SpawnerLostError) return err.message;
  return spawnErrorText(file, err as NodeJS.ErrnoException);
}

/** sync(2) has no Node binding; the `sync` program does the same. Best effort, 10 s at most. */
function flushFileSystems(): Promise<void> {
  return new Promise((resolve) => {
    try {
      const proc = spawn("sync", { stdio: "ignore", timeout: 10_000 });
      proc.once("error", () => resolve());
      proc.once("close", () => resolve());
    } catch {
      resolve();
    }
  });
}
