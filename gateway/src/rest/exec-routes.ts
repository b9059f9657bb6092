import { EXEC_OUTPUT_CAP_BYTES, EXEC_OUTPUT_TRUNCATION_NOTE } from "@bhatti/agent-protocol";
import { error, idParam, jsonBody, onSandbox, op, ref } from "../openapi/schemas.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { endNdjsonStream } from "../auth/live-sessions.js";
import type { GatewayContext } from "../gateway-context.js";
import type { DetachedExecCall } from "../sandboxes/sandbox-agent.js";
import { requestSignal, writableOrGone } from "./client-gone.js";
import { readJsonBody, sendJson } from "./json-body.js";
import type { RestContext } from "./router.js";
import type { RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

interface ExecBody extends DetachedExecCall {
  detach: boolean;
}

function execBodyFromJson(raw: unknown): ExecBody {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConnectError("request body must be a JSON object", Code.InvalidArgument);
  }
  const body = raw as Record<string, unknown>;
  const cmd = body["cmd"];
  if (!Array.isArray(cmd)) throw new ConnectError("cmd required", Code.InvalidArgument);
  if (!cmd.every((a) => typeof a === "string")) {
    throw new ConnectError("cmd must be a list of strings", Code.InvalidArgument);
  }
  const env = body["env"];
  if (
    env !== undefined &&
    (typeof env !== "object" ||
      env === null ||
      Array.isArray(env) ||
      !Object.values(env).every((v) => typeof v === "string"))
  ) {
    throw new ConnectError("env must be an object of strings", Code.InvalidArgument);
  }
  const cwd = body["cwd"];
  const outputFile = body["output_file"];
  return {
    cmd,
    timeoutSec: body["timeout_sec"],
    ...(env !== undefined ? { env: env as Record<string, string> } : {}),
    ...(typeof cwd === "string" && cwd !== "" ? { cwd } : {}),
    detach: body["detach"] === true,
    outputFile: typeof outputFile === "string" ? outputFile : "",
  };
}

/**
 * Writes one NDJSON line; node sends each write at once (no buffering), so lines arrive as they
 * happen. Resolves when the response can take the next line: a client that stops reading holds
 * the exec's output (the agent socket pauses) instead of growing the gateway's memory.
 */
async function writeLine(ctx: RestContext, value: unknown): Promise<void> {
  if (!ctx.res.write(`${JSON.stringify(value)}\n`)) await writableOrGone(ctx.res);
}

/** `POST /sandboxes/:id/exec`: JSON result, NDJSON stream (`Accept: application/x-ndjson`), or detached. */
export function registerExecRoutes(router: RestRouter, gw: GatewayContext): void {
  const { agent } = gw.runtime;
  router.add(
    "POST",
    "/sandboxes/:id/exec",
    userRoute(gw, "exec", async (ctx, user) => {
      const body = execBodyFromJson(await readJsonBody(ctx.req));
      const signal = requestSignal(ctx);

      if (body.detach) {
        const started = await agent.execDetached(user, sandboxRef(ctx), body, signal);
        sendJson(ctx.res, 200, { pid: started.pid, output_file: started.outputFile, detached: true });
        return;
      }

      const events = await agent.exec(user, sandboxRef(ctx), body, signal);
      // Streaming only when Accept is exactly application/x-ndjson (v1).
      if (ctx.req.headers.accept === "application/x-ndjson") {
        ctx.res.writeHead(200, {
          "content-type": "application/x-ndjson",
          "x-content-type-options": "nosniff",
        });
        ctx.res.flushHeaders();
        // Revoking the key ends the stream: an in-band error line, then the connection closes.
        const untrack = gw.auth.sessions.register(user, {
          end: (reason) => endNdjsonStream(ctx.res, reason),
        });
        ctx.res.once("close", untrack);
        try {
          // Leaving the loop (the client went away) returns the generator: the exec connection
          // is dropped and the agent kills the command.
          for await (const ev of events) {
            if (signal.aborted) break;
            if (ev.type === "exit") await writeLine(ctx, { type: "exit", exit_code: ev.exitCode });
            else await writeLine(ctx, { type: ev.type, data: ev.data.toString("utf8") });
          }
        } catch (e) {
          if (signal.aborted) return;
          // After the 200 an error can only travel in-band.
          const err = ConnectError.from(e);
          const internal = err.code === Code.Internal || err.code === Code.Unknown;
          if (internal) gw.logger.error("streamed exec failed", { error: e });
          await writeLine(ctx, {
            type: "error",
            data: internal ? `internal error (request ${ctx.requestId})` : err.rawMessage,
          });
        } finally {
          ctx.res.end();
        }
        return;
      }

      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let exitCode = -1;
      for await (const ev of events) {
        if (signal.aborted) break;
        if (ev.type === "exit") {
          exitCode = ev.exitCode;
          continue;
        }
        const room = EXEC_OUTPUT_CAP_BYTES - size;
        if (room <= 0) {
          truncated = true;
          continue;
        }
        const data = ev.data.byteLength > room ? ev.data.subarray(0, room) : ev.data;
        truncated ||= data.byteLength < ev.data.byteLength;
        (ev.type === "stdout" ? stdout : stderr).push(data);
        size += data.byteLength;
      }
      if (signal.aborted) return;
      if (truncated) stderr.push(Buffer.from(EXEC_OUTPUT_TRUNCATION_NOTE));
      sendJson(ctx.res, 200, {
        exit_code: exitCode,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    }),
    {
      doc: op(
        "Run a command (JSON result; NDJSON stream with Accept: application/x-ndjson; or detached)",
        {
          "200": {
            description: "Result, stream or detached pid",
            content: {
              "application/json": { schema: { oneOf: [ref("ExecResult"), ref("ExecDetached")] } },
              "application/x-ndjson": { schema: ref("ExecEvent") },
            },
          },
          "400": error("cmd required"),
          ...onSandbox,
        },
        { parameters: [idParam], requestBody: jsonBody(ref("ExecRequest")) },
      ),
    },
  );
}
