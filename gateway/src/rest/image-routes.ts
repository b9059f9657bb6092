import { imageJson } from "@bhatti/proto/rest-json";
import { arrayOf, common, json, op } from "../openapi/schemas.js";
import type { GatewayContext } from "../gateway-context.js";
import { sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { userRoute } from "./user-route.js";

/** `GET /images`: the images sandboxes can be created from. */
export function registerImageRoutes(router: RestRouter, gw: GatewayContext): void {
  router.add(
    "GET",
    "/images",
    userRoute(gw, "read", async (ctx) => {
      const { images } = await gw.clients.vmm.listImages({});
      sendJson(ctx.res, 200, images.map(imageJson));
    }),
    { doc: op("List images", { "200": json(arrayOf("Image"), "Images"), ...common }) },
  );
}
