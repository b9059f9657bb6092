import { pipeline } from "node:stream/promises";
import { AgentLimits } from "@bhatti/agent-protocol";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { parseFileMode } from "../sandboxes/create-input.js";
import { translatingAgentErrors } from "../sandboxes/agent-errors.js";
import { requestSignal } from "./client-gone.js";
import { sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { intParam, queryParam, sandboxRef, userRoute } from "./user-route.js";

function requiredPath(ctx: RestContext): string {
  const path = queryParam(ctx, "path");
  if (path === undefined || path === "") throw new ConnectError("path required", Code.InvalidArgument);
  return path;
}

/** `/sandboxes/:id/files`: GET (read or `ls=true`), PUT (atomic write), HEAD (stat) — v1 §5.7. */
export function registerFileRoutes(router: RestRouter, gw: GatewayContext): void {
  const { sandboxes, wake } = gw.runtime;

  router.add(
    "GET",
    "/sandboxes/:id/files",
    userRoute(gw, "read", async (ctx, user) => {
      const path = requiredPath(ctx);
      const id = await sandboxes.resolveId(user, sandboxRef(ctx));
      const signal = requestSignal(ctx);
      if (queryParam(ctx, "ls") === "true") {
        const entries = await translatingAgentErrors(() =>
          wake.withAgent(id, (a) => a.listDir(path, { signal }), { signal }),
        );
        sendJson(ctx.res, 200, entries);
        return;
      }
      const offset = intParam(ctx, "offset") ?? 0;
      const limit = intParam(ctx, "limit") ?? 0;
      const maxBytes = intParam(ctx, "max_bytes") ?? 0;
      const partial = offset > 0 || limit > 0 || maxBytes > 0;
      // The agent answers size and mode before any content, so errors come back before a body.
      const file = await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.readFile(path, { offset, limit, maxBytes, signal }), { signal }),
      );
      const headers: Record<string, string | number> = {
        "content-type": "application/octet-stream",
        "x-file-size": file.size,
        "x-file-mode": file.mode,
      };
      if (!partial) headers["content-length"] = file.size;
      ctx.res.writeHead(200, headers);
      // pipeline waits for 'drain' and ends when the client goes away: the content iterator is
      // then returned, which closes the agent connection (and frees the agent's slot).
      try {
        await pipeline(file.content, ctx.res);
      } catch (e) {
        if (!signal.aborted) gw.logger.warn("file read failed mid-stream", { sandbox_id: id, error: e });
        ctx.res.destroy();
      }
    }),
  );

  router.add(
    "HEAD",
    "/sandboxes/:id/files",
    userRoute(gw, "read", async (ctx, user) => {
      const path = requiredPath(ctx);
      const id = await sandboxes.resolveId(user, sandboxRef(ctx));
      const signal = requestSignal(ctx);
      const info = await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.stat(path, { signal }), { signal }),
      );
      ctx.res.writeHead(200, {
        "x-file-size": info.size,
        "x-file-mode": info.mode,
        "x-file-isdir": String(info.is_dir),
      });
      ctx.res.end();
    }),
  );

  router.add(
    "PUT",
    "/sandboxes/:id/files",
    userRoute(gw, "exec", async (ctx, user) => {
      const path = requiredPath(ctx);
      const lengthHeader = ctx.req.headers["content-length"];
      if (lengthHeader === undefined || ctx.req.headers["transfer-encoding"] !== undefined) {
        throw new ConnectError(
          "Content-Length required (chunked bodies are not accepted)",
          Code.InvalidArgument,
        );
      }
      const size = Number(lengthHeader);
      if (!Number.isSafeInteger(size) || size < 0)
        throw new ConnectError("invalid Content-Length", Code.InvalidArgument);
      if (size > AgentLimits.maxWriteBytes) {
        throw new ConnectError(
          `file too large: ${size} bytes (max ${AgentLimits.maxWriteBytes})`,
          Code.InvalidArgument,
        );
      }
      const mode = parseFileMode(queryParam(ctx, "mode") ?? "");
      const id = await sandboxes.resolveId(user, sandboxRef(ctx));
      const signal = requestSignal(ctx);
      const agent = await wake.ensureHot(id);
      await translatingAgentErrors(() =>
        agent.writeFileStream(path, ctx.req, size, { mode: mode.toString(8).padStart(4, "0"), signal }),
      );
      sendJson(ctx.res, 200, { status: "ok" });
    }),
    { maxBodyBytes: AgentLimits.maxWriteBytes },
  );
}
