import { imageJson, taskJson } from "@bhatti/proto/rest-json";
import { type ServerConfig, configKeys } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { createImageOperations } from "../images/image-operations.js";
import { arrayOf, common, error, json, jsonBody, op, ref } from "../openapi/schemas.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { requestSignal } from "./client-gone.js";
import { queryParam, userRoute } from "./user-route.js";

const str = (body: Record<string, unknown>, key: string, required = false): string => {
  const v = body[key];
  if (v === undefined && !required) return "";
  if (typeof v !== "string" || (required && v === "")) {
    throw new ConnectError(`${key} must be a${required ? " non-empty" : ""} string`, Code.InvalidArgument);
  }
  return v;
};

/** The body cap of an upload; the default when routes are listed without a configuration (docs). */
function uploadCapMb(gw: GatewayContext): number {
  const config = gw.config as ServerConfig | undefined;
  return config?.image_upload_max_mb ?? configKeys.image_upload_max_mb.default;
}

const nameParam = { name: "name", in: "path", required: true, schema: { type: "string" } };
const taskAccepted = { "202": json(ref("Task"), "The task; poll GET /tasks/{id}") };

/**
 * `/images` (list, pull, import, delete, share), `POST /sandboxes/:id/save-image` and
 * `GET /tasks/:id`. Pull, import and save answer 202 with a task at once; the vmm runs them.
 */
export function registerImageRoutes(router: RestRouter, gw: GatewayContext): void {
  const ops = createImageOperations(gw);

  router.add(
    "GET",
    "/images",
    userRoute(gw, "read", async (ctx, user) => {
      const { images } = await gw.clients.vmm.listImages({ userId: user.id });
      sendJson(ctx.res, 200, images.map(imageJson));
    }),
    {
      doc: op("List the images the caller may use (own, shared, system)", {
        "200": json(arrayOf("Image"), "Images"),
        ...common,
      }),
    },
  );

  router.add(
    "POST",
    "/images/pull",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const task = await ops.pull(user, {
        ref: str(body, "ref", true),
        name: str(body, "name"),
        auth: str(body, "auth"),
        platform: str(body, "platform"),
        insecure: body["insecure"] === true,
      });
      sendJson(ctx.res, 202, taskJson(task));
    }),
    {
      doc: op(
        "Pull an image from an OCI/Docker registry (a task)",
        {
          ...taskAccepted,
          "400": error("Bad reference, name or platform"),
          "409": error("Name taken"),
          ...common,
        },
        {
          requestBody: jsonBody({
            type: "object",
            required: ["ref"],
            properties: {
              ref: { type: "string" },
              name: { type: "string" },
              auth: { type: "string", description: "user:token" },
              platform: { type: "string", description: "os/arch[/variant]" },
              insecure: { type: "boolean", description: "plain HTTP to a non-loopback registry" },
            },
          }),
        },
      ),
    },
  );

  router.add(
    "POST",
    "/images/import",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const type = (ctx.req.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
      let task: Awaited<ReturnType<typeof ops.pull>>;
      if (type === "application/json") {
        // A tar already on the server (admin).
        const body = await readJsonObject(ctx.req);
        task = await ops.importTar(user, { path: str(body, "path", true), name: str(body, "name", true) });
      } else {
        // The tar is the body, streamed to the vmm as it arrives.
        const name = queryParam(ctx, "name") ?? "";
        if (name === "") throw new ConnectError("the name query parameter is required", Code.InvalidArgument);
        const size = Number(ctx.req.headers["content-length"]);
        if (!Number.isSafeInteger(size) || size <= 0) {
          throw new ConnectError(
            "Content-Length required (chunked bodies are not accepted)",
            Code.InvalidArgument,
          );
        }
        task = await ops.upload(user, name, size, ctx.req, requestSignal(ctx));
      }
      sendJson(ctx.res, 202, taskJson(task));
    }),
    {
      doc: op(
        "Import a docker-archive or oci-archive tar (a task): the tar as the body (`?name=`), or `{path, name}` of a tar on the server (admin)",
        {
          ...taskAccepted,
          "400": error("No name, no Content-Length, or a body over image_upload_max_mb"),
          "403": error("A server path from a non-admin"),
          ...common,
        },
        {
          parameters: [{ name: "name", in: "query", schema: { type: "string" } }],
          requestBody: {
            required: true,
            content: {
              "application/x-tar": { schema: { type: "string", format: "binary" } },
              "application/json": {
                schema: {
                  type: "object",
                  required: ["path", "name"],
                  properties: { path: { type: "string" }, name: { type: "string" } },
                },
              },
            },
          },
        },
      ),
      maxBodyBytes: uploadCapMb(gw) * 1024 * 1024,
    },
  );

  router.add(
    "POST",
    "/sandboxes/:id/save-image",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const task = await ops.save(user, ctx.params["id"] ?? "", str(body, "name", true));
      sendJson(ctx.res, 202, taskJson(task));
    }),
    {
      doc: op(
        "Save a running sandbox's filesystem as an image (sync, freeze, copy, thaw; a task)",
        { ...taskAccepted, "404": error("No such sandbox"), ...common },
        {
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          requestBody: jsonBody({
            type: "object",
            required: ["name"],
            properties: { name: { type: "string" } },
          }),
        },
      ),
    },
  );

  router.add(
    "DELETE",
    "/images/:name",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      await ops.remove(user, ctx.params["name"] ?? "");
      sendJson(ctx.res, 200, { status: "deleted" });
    }),
    {
      doc: op(
        "Delete one of the caller's images (refused while a sandbox uses it)",
        {
          "200": json({ type: "object" }, "Deleted"),
          "404": error("No such image"),
          "409": error("In use"),
          ...common,
        },
        { parameters: [nameParam] },
      ),
    },
  );

  router.add(
    "POST",
    "/images/:name/share",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const sharedWith = await ops.share(user, {
        name: ctx.params["name"] ?? "",
        user: str(body, "user", true),
        unshare: body["unshare"] === true,
      });
      sendJson(ctx.res, 200, { name: ctx.params["name"], shared_with: sharedWith });
    }),
    {
      doc: op(
        "Share one of the caller's images with another user (or withdraw it with unshare)",
        {
          "200": json({ type: "object" }, "Who it is shared with"),
          "404": error("No such image"),
          ...common,
        },
        {
          parameters: [nameParam],
          requestBody: jsonBody({
            type: "object",
            required: ["user"],
            properties: {
              user: { type: "string", description: "user id (admins may give a name)" },
              unshare: { type: "boolean" },
            },
          }),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/tasks/:id",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, taskJson(await ops.task(user, ctx.params["id"] ?? "")));
    }),
    {
      doc: op(
        "An image task: status, phase, progress, error",
        { "200": json(ref("Task"), "The task"), "404": error("No such task (or forgotten)"), ...common },
        { parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }] },
      ),
    },
  );
}
