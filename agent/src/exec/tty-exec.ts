import { FrameType, decodeResizePayload, decodeSignalPayload } from "@bhatti/agent-protocol";
import type { AgentContext } from "../agent-context.js";
import type { ControlConnection } from "../server/control-connection.js";
import { spawnPtyProcess, type SessionProcess } from "../sessions/session-process.js";
import { signalFromFrame, signalGroup, spawnErrorText, type CommandSpec } from "./command-spec.js";

/** How long a command whose client vanished gets after SIGHUP before SIGKILL. */
const HANGUP_GRACE_MS = 2_000;

/**
 * One-shot TTY exec (the sudo socket's `tty: true`): the command gets a pseudo-terminal and
 * lives exactly as long as its client, like a command in an ssh session. STDOUT frames carry
 * the terminal's output, then EXIT. Input: STDIN, RESIZE, KILL (SIGKILL to the group),
 * SIGNAL. No session is registered, so nothing lingers, nothing can be re-attached and no
 * scrollback is kept. When the client goes away the terminal hangs up: SIGHUP to the group
 * (an editor may save its buffer), SIGKILL after a grace period.
 */
export async function handleTtyExec(
  ctx: AgentContext,
  conn: ControlConnection,
  spec: CommandSpec,
  rows: number,
  cols: number,
): Promise<void> {
  const { sink, reader } = conn;
  let proc: SessionProcess;
  try {
    proc = spawnPtyProcess(spec, rows, cols);
  } catch (err) {
    sink.fail(spawnErrorText(spec.file, err as NodeJS.ErrnoException));
    return;
  }

  let finished = false;
  let outputPaused = false;
  const done = new Promise<void>((resolve) => {
    proc.onExit((code) => {
      finished = true;
      sink.sendExit(code);
      sink.end();
      resolve();
    });
  });
  proc.onData((chunk) => {
    if (!sink.send(FrameType.STDOUT, chunk) && !outputPaused && !sink.closed) {
      outputPaused = true;
      proc.pause();
      void sink.drained().then(() => {
        outputPaused = false;
        proc.resume();
      });
    }
  });

  const hangUp = () => {
    if (finished) return;
    signalGroup(proc.pid, "SIGHUP");
    const timer = setTimeout(() => {
      if (!finished) signalGroup(proc.pid, "SIGKILL");
    }, HANGUP_GRACE_MS);
    timer.unref();
  };

  void (async () => {
    for (;;) {
      let frame: Awaited<ReturnType<typeof reader.read>>;
      try {
        frame = await reader.read();
      } catch {
        frame = null;
      }
      if (finished) return;
      if (frame === null) {
        hangUp();
        return;
      }
      switch (frame.type) {
        case FrameType.STDIN:
          ctx.activity.touch();
          if (frame.payload.byteLength > 0) proc.write(frame.payload);
          break;
        case FrameType.RESIZE: {
          const size = decodeResizePayload(frame.payload);
          if (size !== undefined) proc.resize(size.rows, size.cols);
          break;
        }
        case FrameType.KILL:
          signalGroup(proc.pid, "SIGKILL");
          break;
        case FrameType.SIGNAL: {
          const signal = signalFromFrame(decodeSignalPayload(frame.payload));
          if (signal !== undefined) signalGroup(proc.pid, signal);
          break;
        }
        default:
          // Other input frames are ignored, as everywhere else.
          break;
      }
    }
  })();

  await done;
}
