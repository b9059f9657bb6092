import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderApiReference, typeOf } from "./api-markdown.js";
import { documentedRoutes } from "./documented-routes.js";
import { openApiDocument, openApiPath } from "./openapi-document.js";

const committedPath = fileURLToPath(new URL("../../../docs/api.md", import.meta.url));

describe("docs/api.md", () => {
  const routes = documentedRoutes();
  const rendered = renderApiReference(openApiDocument(routes));

  it("is the current rendering of the OpenAPI document (run `npm run docs:api` after changing a route)", () => {
    expect(readFileSync(committedPath, "utf8")).toBe(rendered);
  });

  it("has a section for every registered route, WebSocket routes included", () => {
    for (const r of routes) expect(rendered).toContain(`### ${r.method} ${openApiPath(r.pattern)}\n`);
    expect(rendered).toContain("| GET (WebSocket) | [`/sandboxes/{id}/ws`]");
  });

  it("summarises schemas as short types", () => {
    expect(typeOf({ type: "array", items: { $ref: "#/components/schemas/Sandbox" } })).toBe(
      "[Sandbox](#sandbox)[]",
    );
    expect(typeOf({ type: "string", format: "date-time" })).toBe("string (date-time)");
    expect(typeOf({ type: "string", enum: ["hot", "cold"] })).toBe('"hot" | "cold"');
    expect(typeOf({ type: "object", additionalProperties: { type: "string" } })).toBe("map of string");
  });
});
