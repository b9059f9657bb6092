import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderApiReference } from "./api-markdown.js";
import { documentedRoutes } from "./documented-routes.js";
import { openApiDocument } from "./openapi-document.js";

// Regenerates docs/api.md from the same document as docs/openapi.json (`npm run docs:api`).
const target = fileURLToPath(new URL("../../../docs/api.md", import.meta.url));
writeFileSync(target, renderApiReference(openApiDocument(documentedRoutes())));
process.stdout.write(`wrote ${target}\n`);
