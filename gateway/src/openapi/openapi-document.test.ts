import { describe, expect, it } from "vitest";
import { documentedRoutes } from "./documented-routes.js";
import { openApiDocument, openApiPath } from "./openapi-document.js";

type Operation = { summary: string; security?: unknown[]; responses: Record<string, unknown> };

describe("the OpenAPI document comes from the registered routes", () => {
  const routes = documentedRoutes();
  const doc = openApiDocument(routes) as { paths: Record<string, Record<string, Operation>> };

  it("every registered route carries a doc, and each becomes exactly one operation", () => {
    expect(routes.filter((r) => r.doc === undefined).map((r) => `${r.method} ${r.pattern}`)).toEqual([]);
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(operations.sort()).toEqual(routes.map((r) => `${r.method} ${openApiPath(r.pattern)}`).sort());
  });

  it("the WebSocket endpoints are GETs answered with 101", () => {
    const ws = routes.filter((r) => r.websocket).map((r) => r.pattern);
    expect(ws).toEqual(["/sandboxes/:id/ws", "/sandboxes/:id/exec/ws"]);
    for (const pattern of ws) {
      expect(doc.paths[openApiPath(pattern)]?.["get"]?.responses["101"]).toBeDefined();
    }
  });

  it("only the public routes are marked as needing no key", () => {
    const open = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op.security !== undefined)
        .map(([method, op]) => ({ route: `${method.toUpperCase()} ${path}`, security: op.security })),
    );
    expect(open).toEqual([
      { route: "GET /health", security: [] },
      { route: "GET /share/{token}", security: [] },
      { route: "GET /share/assets/{file}", security: [] },
      { route: "GET /openapi.json", security: [] },
    ]);
  });

  it("path parameters become OpenAPI templates", () => {
    expect(openApiPath("/users/:user/rotate-key")).toBe("/users/{user}/rotate-key");
    expect(openApiPath("/sandboxes/:id/exec/ws")).toBe("/sandboxes/{id}/exec/ws");
  });
});
