import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { openApiJson } from "./documented-routes.js";

// Regenerates docs/openapi.json:
//   node --conditions=source --import tsx gateway/src/openapi/write-openapi-file.ts
const target = fileURLToPath(new URL("../../../docs/openapi.json", import.meta.url));
writeFileSync(target, openApiJson());
process.stdout.write(`wrote ${target}\n`);
