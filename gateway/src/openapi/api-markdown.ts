// docs/api.md, rendered from the OpenAPI document (./openapi-document.ts), so the reference lists
// exactly the routes the gateway registers, with their parameters, bodies and responses. The
// WebSocket routes are in the document too (GET answered with 101). `npm run docs:api` writes it;
// test/docs/api-doc.test.ts fails when the committed file differs.

type Json = Record<string, unknown>;

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema?: Json;
}

interface Operation {
  summary: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Json }> };
  security?: unknown[];
  responses: Record<
    string,
    { description?: string; content?: Record<string, { schema?: Json }>; headers?: Json }
  >;
}

const METHODS = ["get", "head", "post", "put", "patch", "delete"] as const;

const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n+/g, " ");
/** Summaries and descriptions are plain text: `<key>` must not become an HTML tag. */
const prose = (text: string): string => text.replace(/</g, "&lt;").replace(/>/g, "&gt;");

const refName = (ref: string): string => ref.replace("#/components/schemas/", "");

/** A short type for a schema: `Sandbox`, `Sandbox[]`, `string (date-time)`, `"a" \| "b"`. */
export function typeOf(schema: Json | undefined): string {
  if (schema === undefined) return "";
  if (typeof schema["$ref"] === "string") {
    const name = refName(schema["$ref"]);
    return `[${name}](#${name.toLowerCase()})`;
  }
  if (Array.isArray(schema["enum"]))
    return (schema["enum"] as unknown[]).map((v) => JSON.stringify(v)).join(" | ");
  if (schema["const"] !== undefined) return JSON.stringify(schema["const"]);
  if (Array.isArray(schema["oneOf"])) return (schema["oneOf"] as Json[]).map(typeOf).join(" or ");
  if (Array.isArray(schema["anyOf"])) return (schema["anyOf"] as Json[]).map(typeOf).join(" or ");
  const type = Array.isArray(schema["type"]) ? (schema["type"] as string[]).join(" or ") : schema["type"];
  if (type === "array") return `${typeOf(schema["items"] as Json | undefined)}[]`;
  if (
    type === "object" &&
    schema["additionalProperties"] !== undefined &&
    schema["properties"] === undefined
  ) {
    const values = schema["additionalProperties"];
    return values === true || typeof values !== "object" ? "object" : `map of ${typeOf(values as Json)}`;
  }
  const format = typeof schema["format"] === "string" ? ` (${schema["format"]})` : "";
  return `${typeof type === "string" ? type : "any"}${format}`;
}

/** One row per property of an object schema (what a body or component holds). */
function propertyRows(schema: Json): string[] {
  const properties = schema["properties"] as Record<string, Json> | undefined;
  if (properties === undefined) return [];
  const required = new Set((schema["required"] as string[] | undefined) ?? []);
  return [
    "| Field | Type | Required | Description |",
    "| --- | --- | --- | --- |",
    ...Object.entries(properties).map(([name, p]) => {
      const notes = [
        p["description"],
        p["pattern"] !== undefined ? `pattern \`${String(p["pattern"])}\`` : undefined,
      ]
        .concat(p["minimum"] !== undefined ? [`min ${String(p["minimum"])}`] : [])
        .concat(p["maximum"] !== undefined ? [`max ${String(p["maximum"])}`] : [])
        .concat(p["default"] !== undefined ? [`default \`${JSON.stringify(p["default"])}\``] : [])
        .filter((n): n is string => typeof n === "string" && n !== "");
      return `| \`${name}\` | ${cell(typeOf(p))} | ${required.has(name) ? "yes" : "no"} | ${cell(notes.join("; "))} |`;
    }),
    "",
  ];
}

function parameterRows(parameters: readonly Parameter[]): string[] {
  if (parameters.length === 0) return [];
  return [
    "| Parameter | In | Type | Required | Description |",
    "| --- | --- | --- | --- | --- |",
    ...parameters.map(
      (p) =>
        `| \`${p.name}\` | ${p.in} | ${cell(typeOf(p.schema))} | ${p.required === true ? "yes" : "no"} | ${cell(prose(p.description ?? ""))} |`,
    ),
    "",
  ];
}

function contentOf(content: Record<string, { schema?: Json }> | undefined): string {
  if (content === undefined) return "";
  return Object.entries(content)
    .map(([type, c]) => `${typeOf(c.schema)} (${type})`)
    .join(", ");
}

function bodyLines(op: Operation): string[] {
  const body = op.requestBody;
  if (body?.content === undefined) return [];
  const lines = [`Body${body.required === false ? " (optional)" : ""}: ${contentOf(body.content)}`, ""];
  // An inline object body is spelled out here; a named one links to its schema below.
  for (const c of Object.values(body.content)) {
    if (c.schema !== undefined && c.schema["$ref"] === undefined) lines.push(...propertyRows(c.schema));
  }
  return lines;
}

function responseRows(op: Operation): string[] {
  return [
    "| Status | Meaning | Body |",
    "| --- | --- | --- |",
    ...Object.entries(op.responses).map(
      ([status, r]) => `| ${status} | ${cell(prose(r.description ?? ""))} | ${cell(contentOf(r.content))} |`,
    ),
    "",
  ];
}

/** The Markdown of docs/api.md for an OpenAPI 3.1 document. */
export function renderApiReference(doc: Json): string {
  const info = doc["info"] as { title: string; description?: string };
  const servers = (doc["servers"] as { url: string }[] | undefined) ?? [];
  const paths = doc["paths"] as Record<string, Record<string, Operation>>;
  const schemas = ((doc["components"] as Json | undefined)?.["schemas"] ?? {}) as Record<string, Json>;
  const operations = Object.entries(paths).flatMap(([path, ops]) =>
    METHODS.filter((m) => ops[m] !== undefined).map((m) => ({
      path,
      method: m.toUpperCase(),
      op: ops[m] as Operation,
    })),
  );
  const isWebSocket = (op: Operation): boolean => op.responses["101"] !== undefined;
  const lines = [
    `# ${info.title}`,
    "",
    "<!-- Generated from the OpenAPI document by `npm run docs:api` (gateway/src/openapi/api-markdown.ts). Do not edit. -->",
    "",
    info.description ?? "",
    "",
    `Base URL: ${servers.map((s) => `\`${s.url}\``).join(", ")} (the gateway's \`listen\` address). ` +
      "Every route needs `Authorization: Bearer <api key>` unless it is marked public. " +
      "The same document is served at `GET /openapi.json` and committed as `docs/openapi.json`.",
    "",
    "## Routes",
    "",
    "| Method | Path | Summary |",
    "| --- | --- | --- |",
    ...operations.map(
      ({ path, method, op }) =>
        `| ${isWebSocket(op) ? "GET (WebSocket)" : method} | [\`${path}\`](#${anchor(method, path)}) | ${cell(prose(op.summary))} |`,
    ),
    "",
  ];
  for (const { path, method, op } of operations) {
    lines.push(`### ${method} ${path}`, "", prose(op.summary), "");
    if (isWebSocket(op)) lines.push("A WebSocket endpoint: send a GET with `Upgrade: websocket`.", "");
    if (Array.isArray(op.security) && op.security.length === 0) lines.push("Public: no API key needed.", "");
    lines.push(...parameterRows(op.parameters ?? []), ...bodyLines(op), ...responseRows(op));
  }
  lines.push("## Schemas", "");
  for (const [name, schema] of Object.entries(schemas)) {
    lines.push(`### ${name}`, "");
    if (typeof schema["description"] === "string") lines.push(prose(schema["description"]), "");
    const rows = propertyRows(schema);
    lines.push(...(rows.length > 0 ? rows : [`Type: ${typeOf(schema)}`, ""]));
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

/** GitHub's heading anchor for `### GET /sandboxes/{id}`. */
function anchor(method: string, path: string): string {
  return `${method} ${path}`
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, "")
    .replace(/ /g, "-");
}
