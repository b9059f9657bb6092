import { pipeline } from "node:stream/promises";
import { AgentLimits } from "@bhatti/agent-protocol";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { requestSignal } from "./client-gone.js";
import { sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { intParam, queryParam, sandboxRef, userRoute } from "./user-route.js";

/** `/sandboxes/:id/files`: GET (read or `ls=true`), PUT (atomic write), HEAD (stat) — v1 §5.7. */
export function registerFileRoutes(router: RestRouter, gw: GatewayContext): void {
  const { agent } = gw.runtime;
  const pathOf = (ctx: RestContext): string => queryParam(ctx, "path") ?? "";

  router.add(
    "GET",
    "/sandboxes/:id/files",
    userRoute(gw, "read", async (ctx, user) => {
      const signal = requestSignal(ctx);
      if (queryParam(ctx, "ls") === "true") {
        sendJson(ctx.res, 200, await agent.listDir(user, sandboxRef(ctx), pathOf(ctx), signal));
        return;
      }
      const offset = intParam(ctx, "offset") ?? 0;
      const limit = intParam(ctx, "limit") ?? 0;
      const maxBytes = intParam(ctx, "max_bytes") ?? 0;
      const partial = offset > 0 || limit > 0 || maxBytes > 0;
      // The agent answers size and mode before any content, so errors come back before a body.
      const file = await agent.readFile(
        user,
        sandboxRef(ctx),
        { path: pathOf(ctx), offset, limit, maxBytes },
        signal,
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
        if (!signal.aborted)
          gw.logger.warn("file read failed mid-stream", { sandbox_id: file.sandboxId, error: e });
        ctx.res.destroy();
      }
    }),
  );

  router.add(
    "HEAD",
    "/sandboxes/:id/files",
    userRoute(gw, "read", async (ctx, user) => {
      const info = await agent.stat(user, sandboxRef(ctx), pathOf(ctx), requestSignal(ctx));
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
      await agent.writeFile(
        user,
        sandboxRef(ctx),
        { path: pathOf(ctx), mode: queryParam(ctx, "mode") ?? "", content: { stream: ctx.req, size } },
        requestSignal(ctx),
      );
      sendJson(ctx.res, 200, { status: "ok" });
    }),
    { maxBodyBytes: AgentLimits.maxWriteBytes },
  );
}
