import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { error, idParam, json, jsonBody, onSandbox, op } from "../openapi/schemas.js";
import type { ShareView } from "../share/share-manager.js";
import { sendSharePage } from "../share/share-page-html.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

/** The base URL the caller reached the gateway at (what a share link is printed with). */
export function requestBaseUrl(headers: { host?: string | undefined }, encrypted: boolean): string {
  const host =
    headers.host !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(headers.host) ? headers.host : "localhost";
  return `${encrypted ? "https" : "http"}://${host}`;
}

/** The REST shape of a share (snake_case); token and url only when just created. */
export function shareJson(s: ShareView, baseUrl: string) {
  return {
    id: s.id,
    sandbox_id: s.sandboxId,
    session_id: s.sessionId,
    read_only: s.readOnly,
    expires_at: s.expiresAt.toISOString(),
    created_at: s.createdAt.toISOString(),
    ...(s.token !== undefined ? { token: s.token } : {}),
    ...(s.path !== undefined ? { url: `${baseUrl}${s.path}` } : {}),
  };
}

const shareSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    sandbox_id: { type: "string" },
    session_id: { type: "string" },
    read_only: { type: "boolean" },
    expires_at: { type: "string", format: "date-time" },
    created_at: { type: "string", format: "date-time" },
    token: { type: "string", description: "Only when created" },
    url: { type: "string", description: "The page, only when created" },
  },
};

const assetTypes: Readonly<Record<string, string>> = {
  "share-page.js": "text/javascript; charset=utf-8",
  "share-page.css": "text/css; charset=utf-8",
};
// Next to the gateway's bundle (gateway/dist/main.js): built by scripts/build.mjs.
const assetDir = new URL("./share-page/", import.meta.url);

const baseOf = (ctx: RestContext) =>
  requestBaseUrl(ctx.req.headers, (ctx.req.socket as { encrypted?: boolean }).encrypted === true);

/**
 * Share links: `POST/GET/DELETE /sandboxes/:id/share[/:shareId]` for the owner, and the public
 * `/share/<token>` page with its assets (the socket is ws/websocket-routes.ts's, share/share-socket.ts).
 */
export function registerShareRoutes(router: RestRouter, gw: GatewayContext): void {
  const { shares } = gw;

  router.add(
    "POST",
    "/sandboxes/:id/share",
    userRoute(gw, "exec", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const expires = body["expires_sec"];
      const readOnly = body["read_only"];
      const sessionId = body["session_id"];
      if (expires !== undefined && typeof expires !== "number") {
        throw new ConnectError("expires_sec must be a number of seconds", Code.InvalidArgument);
      }
      if (readOnly !== undefined && typeof readOnly !== "boolean") {
        throw new ConnectError("read_only must be a boolean", Code.InvalidArgument);
      }
      if (sessionId !== undefined && typeof sessionId !== "string") {
        throw new ConnectError("session_id must be a string", Code.InvalidArgument);
      }
      const share = await shares.create(user, sandboxRef(ctx), {
        expiresSec: expires,
        readOnly: readOnly === true,
        sessionId,
      });
      sendJson(ctx.res, 201, shareJson(share, baseOf(ctx)));
    }),
    {
      doc: op(
        "Create a share link: a web terminal page attached to a TTY session (new, or session_id)",
        {
          "201": json(shareSchema, "The share, with its token and url"),
          "400": error("Bad expiry"),
          ...onSandbox,
        },
        {
          parameters: [idParam],
          requestBody: jsonBody(
            {
              type: "object",
              properties: {
                expires_sec: { type: "integer", minimum: 1, maximum: 2_592_000, description: "Default 3600" },
                read_only: { type: "boolean" },
                session_id: { type: "string", description: "Share this running TTY session" },
              },
            },
            false,
          ),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/sandboxes/:id/share",
    userRoute(gw, "read", async (ctx, user) => {
      const list = await shares.list(user, sandboxRef(ctx));
      sendJson(
        ctx.res,
        200,
        list.map((s) => shareJson(s, baseOf(ctx))),
      );
    }),
    {
      doc: op(
        "List the sandbox's live shares (without tokens)",
        { "200": json({ type: "array", items: shareSchema }, "Shares"), ...onSandbox },
        { parameters: [idParam] },
      ),
    },
  );

  const revokeRoute = userRoute(gw, "read", async (ctx, user) => {
    const ids = await shares.revoke(user, sandboxRef(ctx), ctx.params["shareId"]);
    sendJson(ctx.res, 200, { revoked: ids });
  });
  const revokeDoc = (summary: string, withId: boolean) =>
    op(
      summary,
      {
        "200": json(
          { type: "object", properties: { revoked: { type: "array", items: { type: "string" } } } },
          "Ids revoked",
        ),
        ...onSandbox,
      },
      {
        parameters: withId
          ? [idParam, { name: "shareId", in: "path", required: true, schema: { type: "string" } }]
          : [idParam],
      },
    );
  router.add("DELETE", "/sandboxes/:id/share", revokeRoute, {
    doc: revokeDoc("Revoke every share of the sandbox (their viewers are disconnected)", false),
  });
  router.add("DELETE", "/sandboxes/:id/share/:shareId", revokeRoute, {
    doc: revokeDoc("Revoke one share", true),
  });

  // The page: public (the token is the credential), rate-limited per client address.
  router.add(
    "GET",
    "/share/:token",
    async (ctx) => {
      shares.limitAddress(ctx.req.socket.remoteAddress ?? "");
      const share = await shares.authorize(ctx.params["token"] ?? "");
      sendSharePage(ctx.res, share.claims, ctx.req.method === "HEAD");
    },
    {
      public: true,
      doc: op(
        "The web terminal page of a share link (401: invalid, expired or revoked)",
        {
          "200": { description: "HTML page", content: { "text/html": { schema: { type: "string" } } } },
          "401": error("Invalid, expired or revoked link"),
          "429": error("Too many requests from this address"),
        },
        { parameters: [{ name: "token", in: "path", required: true, schema: { type: "string" } }] },
      ),
    },
  );

  const assets = new Map<string, Buffer>();
  router.add(
    "GET",
    "/share/assets/:file",
    async (ctx) => {
      const file = ctx.params["file"] ?? "";
      const type = assetTypes[file];
      if (type === undefined) throw new ConnectError("not found", Code.NotFound);
      let data = assets.get(file);
      if (data === undefined) {
        try {
          data = await readFile(fileURLToPath(new URL(file, assetDir)));
        } catch {
          throw new ConnectError("share page assets are not built (node scripts/build.mjs)", Code.NotFound);
        }
        assets.set(file, data);
      }
      ctx.res.writeHead(200, {
        "Content-Type": type,
        "Content-Length": data.length,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
      });
      ctx.res.end(ctx.req.method === "HEAD" ? undefined : data);
    },
    {
      public: true,
      doc: op(
        "The share page's script and styles (xterm.js bundled; no token needed)",
        {
          "200": { description: "share-page.js or share-page.css" },
          "404": error("Unknown file"),
        },
        { parameters: [{ name: "file", in: "path", required: true, schema: { type: "string" } }] },
      ),
    },
  );
}
