import { spawn } from "node:child_process";
import { closeSync, fchownSync, openSync } from "node:fs";
import { FrameType, errorTextFor, type DetachedExecResult, type ExecRequest } from "@bhatti/agent-protocol";
import type { AgentContext } from "../agent-context.js";
import type { ControlConnection } from "../server/control-connection.js";
import { osErrorText } from "../files/os-error-text.js";
import { CommandSpecError, resolveCommandSpec, spawnErrorText } from "./command-spec.js";
import { SpawnerLostError } from "./resident-spawner.js";

/**
 * Detached exec: the command runs in its own session with stdout and stderr appended to
 * `output_file`, and outlives the connection. Reply: one STDOUT frame with
 * `{"pid","output_file"}`, then EXIT(0). The spawner (or Node) reaps the child when it exits.
 */
export async function handleDetachedExec(
  ctx: AgentContext,
  conn: ControlConnection,
  req: ExecRequest,
): Promise<void> {
  const { sink } = conn;
  let spec: ReturnType<typeof resolveCommandSpec>;
  try {
    spec = resolveCommandSpec(ctx, req);
  } catch (err) {
    if (err instanceof CommandSpecError) {
      sink.fail(err.message);
      return;
    }
    throw err;
  }
  const outputFile =
    typeof req.output_file === "string" && req.output_file !== ""
      ? req.output_file
      : `/tmp/bhatti-detach-${unixNanos()}.log`;

  let fd: number;
  try {
    fd = openSync(outputFile, "w", 0o644);
    // The user owns its log so it can read, rotate or delete it.
    if (spec.credentials !== undefined) fchownSync(fd, spec.identity.uid, spec.identity.gid);
  } catch (err) {
    sink.fail(errorTextFor.openOutputFile(osErrorText("open", outputFile, err)));
    return;
  }

  const reply = (pid: number) => {
    const result: DetachedExecResult = { pid, output_file: outputFile };
    sink.sendJson(FrameType.STDOUT, result);
    sink.sendExit(0);
    sink.end();
  };

  if (ctx.spawner !== undefined) {
    // The spawner opens the file again (O_WRONLY, the offset shared by stdout and stderr, as
    // this fd would be) in the child; the spawner reaps it and the agent logs the exit.
    let started: Awaited<ReturnType<typeof ctx.spawner.startCommand>>;
    try {
      started = await ctx.spawner.startCommand(spec, outputFile);
    } catch (err) {
      closeSync(fd);
      sink.fail(
        err instanceof SpawnerLostError
          ? err.message
          : spawnErrorText(spec.file, err as NodeJS.ErrnoException),
      );
      return;
    }
    if (started !== undefined) {
      closeSync(fd);
      reply(started.pid);
      return;
    }
    // The spawner is not up: Node's spawn, on the fd opened above.
  }

  try {
    const child = spawn(spec.path, spec.args, {
      argv0: spec.file,
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["ignore", fd, fd],
      detached: true,
      ...spec.credentials,
    });
    child.once("error", (err: NodeJS.ErrnoException) => {
      ctx.log.warn("detached exec failed", { argv: spec.argv, error: err.message });
    });
    child.once("exit", (code, signal) => {
      ctx.log.info("detached exec done", { pid: child.pid, code, signal });
    });
    child.unref();
    if (child.pid === undefined) {
      // spawn() reports ENOENT asynchronously but leaves pid unset synchronously.
      child.removeAllListeners("error");
      child.once("error", (err: NodeJS.ErrnoException) => sink.fail(spawnErrorText(spec.file, err)));
      return;
    }
    reply(child.pid);
  } catch (err) {
    sink.fail(spawnErrorText(spec.file, err as NodeJS.ErrnoException));
  } finally {
    closeSync(fd);
  }
}

/** Unix time in nanoseconds (v1 named default log files after it). */
function unixNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}
