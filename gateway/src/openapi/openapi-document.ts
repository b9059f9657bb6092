import { BHATTI_VERSION } from "@bhatti/runtime";
import type { RouteEntry } from "../rest/router.js";
import { componentSchemas } from "./schemas.js";

// The OpenAPI 3.1 description of the REST API, built from the router's registered routes and the
// docs they carry. Served at /openapi.json and committed as docs/openapi.json (a test keeps the
// two identical, and another validates real responses against it).

/** `/sandboxes/:id/files` → `/sandboxes/{id}/files`. */
export function openApiPath(pattern: string): string {
  return pattern.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");
}

/** The OpenAPI 3.1 document of these routes (deterministic: paths in registration order). */
export function openApiDocument(routes: readonly RouteEntry[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    if (route.doc === undefined) continue;
    const { summary, parameters, requestBody, responses } = route.doc;
    const operation = {
      summary,
      ...(parameters !== undefined ? { parameters } : {}),
      ...(requestBody !== undefined ? { requestBody } : {}),
      // Public routes need no key; the rest inherit the document's bearer requirement.
      ...(route.public ? { security: [] } : {}),
      responses,
    };
    const path = openApiPath(route.pattern);
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "bhatti REST API",
      version: BHATTI_VERSION,
      description:
        'Sandboxes for AI coding agents. Every response carries X-Bhatti-Version. Errors are {"error": "..."}; a 500 carries only a request id. JSON bodies are capped at 1 MiB.',
    },
    servers: [{ url: "http://127.0.0.1:8080" }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "bht_ + 64 hex chars" } },
      schemas: componentSchemas,
    },
    paths,
  };
}

/** The document as served and as committed in docs/openapi.json. */
export function openApiText(routes: readonly RouteEntry[]): string {
  return `${JSON.stringify(openApiDocument(routes), null, 2)}\n`;
}
