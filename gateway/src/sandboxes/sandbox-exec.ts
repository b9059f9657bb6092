import type { AgentClient, ExecProcess } from "@bhatti/agent-client";
import type { WakeController } from "../wake/wake-controller.js";
import { agentErrorToConnect } from "./agent-errors.js";

export interface ExecInput {
  cmd: string[];
  timeoutSec: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Sent as stdin, then EOF; without it (or empty) the command's stdin is /dev/null. */
  stdin?: Uint8Array;
  /** The caller's request: aborting it (the client went away) drops the exec, killing the command. */
  signal?: AbortSignal;
}

export type ExecOutputEvent =
  | { type: "stdout"; data: Buffer }
  | { type: "stderr"; data: Buffer }
  | { type: "exit"; exitCode: number; timedOut: boolean };

/**
 * Starts a command in a hot sandbox; the returned generator yields its output as it arrives. At the deadline the
 * agent is told to SIGKILL the command's whole process group (grandchildren included), which
 * ends the stream with exit code 137. If the consumer stops early (the client went away),
 * the connection is dropped and the agent kills the command.
 */
export async function startExec(
  wake: WakeController,
  sandboxId: string,
  input: ExecInput,
): Promise<AsyncGenerator<ExecOutputEvent>> {
  // Started before the first output is awaited, so wake and start errors come back as
  // proper errors rather than after a streamed 200.
  // Held until the command ends: the thermal policy never freezes a running exec.
  const release = wake.hold(sandboxId);
  try {
    const signal = input.signal;
    const proc = await wake.withAgent(
      sandboxId,
      (agent: AgentClient) =>
        agent.execStream(input.cmd, {
          // No input: /dev/null, as `docker exec` without -i (and one stdio connection less).
          ...(input.stdin === undefined || input.stdin.byteLength === 0 ? { stdinNull: true } : {}),
          ...(input.env !== undefined ? { env: input.env } : {}),
          ...(input.cwd !== undefined && input.cwd !== "" ? { cwd: input.cwd } : {}),
          ...(signal !== undefined ? { signal } : {}),
        }),
      signal !== undefined ? { signal } : {},
    );
    return followExec(wake, sandboxId, proc, input, release);
  } catch (e) {
    release();
    throw agentErrorToConnect(e);
  }
}

async function* followExec(
  wake: WakeController,
  sandboxId: string,
  proc: ExecProcess,
  input: ExecInput,
  release: () => void,
): AsyncGenerator<ExecOutputEvent> {
  let timedOut = false;
  // Once stdin is closed the agent reads no more frames, so the deadline drops the connection:
  // the agent SIGKILLs the process group of a command whose host went away.
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill();
    proc.close();
  }, input.timeoutSec * 1000);
  const timeoutNote = (): ExecOutputEvent[] => [
    { type: "stderr", data: Buffer.from(`\ncommand timed out after ${input.timeoutSec}s\n`) },
    { type: "exit", exitCode: 137, timedOut: true },
  ];
  try {
    if (input.stdin !== undefined && input.stdin.byteLength > 0) await proc.write(input.stdin);
    proc.closeStdin();
    for await (const ev of proc) {
      wake.touch(sandboxId);
      if (ev.type === "exit") {
        if (timedOut) yield* timeoutNote();
        else yield { type: "exit", exitCode: ev.exitCode, timedOut: false };
        return;
      }
      yield ev;
    }
  } catch (e) {
    if (timedOut) {
      yield* timeoutNote();
      return;
    }
    throw agentErrorToConnect(e);
  } finally {
    clearTimeout(timer);
    proc.close();
    release();
  }
}
