import { arrayOf, error, idParam, json, onSandbox, op, pathQuery } from "../openapi/schemas.js";
import { pipeline } from "node:stream/promises";
import { AgentLimits } from "@bhatti/agent-protocol";
import { fileEntryJson } from "@bhatti/proto/rest-json";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { fileInfoMessage } from "../sandboxes/agent-messages.js";
import { requestSignal } from "./client-gone.js";
import { sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { intParam, queryParam, sandboxRef, userRoute } from "./user-route.js";

/** Whole files up to this size are read into memory and sent in one write. */
const SMALL_READ_BYTES = 64 * 1024;

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
        const entries = await agent.listDir(user, sandboxRef(ctx), pathOf(ctx), signal);
        sendJson(
          ctx.res,
          200,
          entries.map((f) => fileEntryJson(fileInfoMessage(f))),
        );
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
      if (!partial && file.size <= SMALL_READ_BYTES) {
        // A small file is answered in one write (headers and body), without a stream pipeline;
        // a failure before the end is still a proper error status.
        const chunks: Buffer[] = [];
        let received = 0;
        for await (const chunk of file.content) {
          received += chunk.byteLength;
          // The agent is the sandbox's: more than it announced is not buffered.
          if (received > file.size)
            throw new ConnectError(
              "bad gateway: the sandbox's agent sent more than the file size",
              Code.DataLoss,
            );
          chunks.push(chunk);
        }
        ctx.res.writeHead(200, headers);
        ctx.res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
        return;
      }
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
    {
      doc: op(
        "Read a file (raw bytes) or list a directory (ls=true)",
        {
          "200": {
            description: "Content (X-File-Size always; Content-Length only for full reads) or FileInfo[]",
            headers: {
              "X-File-Size": { schema: { type: "integer" } },
              "X-File-Mode": { schema: { type: "string" } },
            },
            content: {
              "application/octet-stream": { schema: { type: "string", format: "binary" } },
              "application/json": { schema: arrayOf("FileInfo") },
            },
          },
          "400": error("path required, or not a regular file / directory"),
          ...onSandbox,
        },
        {
          parameters: [
            idParam,
            pathQuery,
            { name: "ls", in: "query", schema: { type: "boolean" } },
            { name: "offset", in: "query", description: "1-based first line", schema: { type: "integer" } },
            { name: "limit", in: "query", description: "Maximum lines", schema: { type: "integer" } },
            { name: "max_bytes", in: "query", schema: { type: "integer" } },
          ],
        },
      ),
    },
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
    {
      doc: op(
        "Stat a path",
        {
          "200": {
            description: "Exists",
            headers: {
              "X-File-Size": { schema: { type: "integer" } },
              "X-File-Mode": { schema: { type: "string" } },
              "X-File-IsDir": { schema: { type: "boolean" } },
            },
          },
          ...onSandbox,
        },
        { parameters: [idParam, pathQuery] },
      ),
    },
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
    {
      doc: op(
        "Write a file atomically (Content-Length required)",
        {
          "200": json({ type: "object", properties: { status: { const: "ok" } } }, "Written"),
          "400": error("Bad path, size or chunked body"),
          ...onSandbox,
        },
        {
          parameters: [
            idParam,
            pathQuery,
            { name: "mode", in: "query", schema: { type: "string", default: "0644" } },
          ],
          requestBody: {
            required: true,
            content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
          },
        },
      ),
      maxBodyBytes: AgentLimits.maxWriteBytes,
    },
  );
}
