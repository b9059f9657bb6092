import { ID_RULE, SANDBOX_NAME_RULE } from "@bhatti/proto";
import { BHATTI_VERSION } from "@bhatti/runtime";

// The OpenAPI 3.1 description of the REST API. Served at /openapi.json and committed as
// docs/openapi.json (a test keeps the two identical and checks every route is described).

type Schema = Record<string, unknown>;
type Operation = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const error = (description: string) => json(ref("Error"), description);
const jsonBody = (schema: Schema, required = true) => ({
  required,
  content: { "application/json": { schema } },
});
const idParam = {
  name: "id",
  in: "path",
  required: true,
  description: "Sandbox id or name (scoped to the caller; another user's sandbox is 404).",
  schema: { type: "string" },
};
const pathQuery = { name: "path", in: "query", required: true, schema: { type: "string" } };
const common = {
  "401": error("Missing or invalid API key"),
  "429": {
    ...error("Rate limit or quota exceeded"),
    headers: { "Retry-After": { schema: { type: "integer" } } },
  },
  "500": json(ref("InternalError"), "Internal error (detail only in the server log)"),
};
const onSandbox = {
  ...common,
  "404": error("No such sandbox for this user"),
};

function op(summary: string, responses: Record<string, unknown>, extra: Operation = {}): Operation {
  return { summary, ...extra, responses: { ...responses } };
}

const sandboxSchema: Schema = {
  type: "object",
  required: ["id", "name", "status", "created_by", "created_at", "keep_hot", "cpus", "memory_mb", "image"],
  properties: {
    id: { type: "string", pattern: ID_RULE.source },
    name: { type: "string" },
    template_id: { type: "string" },
    engine_id: { type: "string" },
    status: { type: "string", enum: ["creating", "running", "stopped", "unknown", "destroying"] },
    thermal: { type: "string", enum: ["hot", "warm", "cold"], description: "Present while running." },
    ip: { type: "string" },
    engine_meta: { type: "object" },
    created_by: { type: "string" },
    created_at: { type: "string", format: "date-time" },
    stopped_at: { type: "string", format: "date-time" },
    keep_hot: { type: "boolean" },
    cpus: { type: "number" },
    memory_mb: { type: "integer" },
    disk_size_mb: { type: "integer" },
    image: { type: "string" },
    labels: { type: "object", additionalProperties: { type: "string" } },
  },
};

const schemas: Record<string, Schema> = {
  Error: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
  InternalError: {
    type: "object",
    required: ["error", "request_id"],
    properties: { error: { const: "internal error" }, request_id: { type: "string" } },
  },
  Sandbox: sandboxSchema,
  CreateSandbox: {
    type: "object",
    properties: {
      name: { type: "string", pattern: SANDBOX_NAME_RULE.source },
      image: { type: "string" },
      cpus: { type: "number", default: 1 },
      memory_mb: { type: "integer", default: 1024 },
      disk_size_mb: { type: "integer" },
      env: { type: "object", additionalProperties: { type: "string" } },
      secrets: {
        type: "array",
        items: { type: "string" },
        description: "Secret names, exported as env vars.",
      },
      files: {
        type: "array",
        items: {
          type: "object",
          required: ["guest_path"],
          properties: {
            guest_path: { type: "string" },
            content: { type: "string", contentEncoding: "base64" },
            mode: { type: "string", examples: ["0644"] },
          },
        },
      },
      labels: { type: "object", additionalProperties: { type: "string" } },
      keep_hot: { type: "boolean" },
      init: { type: "string" },
    },
  },
  UpdateSandbox: {
    type: "object",
    properties: {
      keep_hot: { type: "boolean" },
      name: { type: "string" },
      labels_add: { type: "object", additionalProperties: { type: "string" } },
      labels_remove: { type: "array", items: { type: "string" } },
    },
  },
  ExecRequest: {
    type: "object",
    required: ["cmd"],
    properties: {
      cmd: { type: "array", items: { type: "string" }, minItems: 1 },
      timeout_sec: {
        type: "integer",
        default: 300,
        description: "1..86400; absent or 0 means 300; anything else is a 400.",
      },
      detach: { type: "boolean" },
      output_file: { type: "string" },
      env: { type: "object", additionalProperties: { type: "string" } },
      cwd: { type: "string" },
    },
  },
  ExecResult: {
    type: "object",
    properties: { exit_code: { type: "integer" }, stdout: { type: "string" }, stderr: { type: "string" } },
  },
  ExecDetached: {
    type: "object",
    properties: { pid: { type: "integer" }, output_file: { type: "string" }, detached: { const: true } },
  },
  ExecEvent: {
    type: "object",
    description: "One NDJSON line of a streamed exec.",
    required: ["type"],
    properties: {
      type: { enum: ["stdout", "stderr", "exit", "error"] },
      data: { type: "string" },
      exit_code: { type: "integer" },
    },
  },
  FileInfo: {
    type: "object",
    properties: {
      name: { type: "string" },
      size: { type: "integer" },
      mode: { type: "string" },
      is_dir: { type: "boolean" },
      mtime: { type: "integer" },
    },
  },
  SessionInfo: {
    type: "object",
    properties: {
      session_id: { type: "string" },
      argv: { type: "string" },
      tty: { type: "boolean" },
      running: { type: "boolean" },
      exit_code: { type: "integer" },
      attached: { type: "boolean" },
      created_at: { type: "integer" },
    },
  },
  Secret: {
    type: "object",
    properties: {
      name: { type: "string" },
      created_at: { type: "string", format: "date-time" },
      updated_at: { type: "string", format: "date-time" },
    },
  },
  User: {
    type: "object",
    properties: {
      id: { type: "string" },
      name: { type: "string" },
      is_admin: { type: "boolean" },
      created_at: { type: "string", format: "date-time" },
      limits: { $ref: "#/components/schemas/UserLimits" },
      sandbox_count: { type: "integer" },
      api_key: { type: "string", description: "Only when created or rotated." },
    },
  },
  UserLimits: {
    type: "object",
    properties: Object.fromEntries(
      [
        "max_sandboxes",
        "max_cpus_per_sandbox",
        "max_memory_mb_per_sandbox",
        "max_volume_storage_mb",
        "max_snapshots",
        "max_images",
        "creates_per_minute",
        "execs_per_minute",
      ].map((k) => [k, { type: "integer" }]),
    ),
  },
  Event: {
    type: "object",
    properties: {
      id: { type: "integer" },
      ts: { type: "string", format: "date-time" },
      type: { type: "string" },
      user_id: { type: "string" },
      sandbox_id: { type: "string" },
      meta: { type: "object" },
    },
  },
  Image: {
    type: "object",
    properties: {
      name: { type: "string" },
      description: { type: "string" },
      size_bytes: { type: "integer" },
      built_at: { type: "string" },
      source: { type: "string" },
      is_default: { type: "boolean" },
    },
  },
};

const arrayOf = (name: string) => ({ type: "array", items: ref(name) });

const paths: Record<string, Record<string, Operation>> = {
  "/health": {
    get: op(
      "Liveness (no auth)",
      {
        "200": json(
          { type: "object", properties: { status: { const: "ok" }, uptime: { type: "string" } } },
          "Healthy",
        ),
      },
      { security: [] },
    ),
  },
  "/openapi.json": {
    get: op("This document (no auth)", { "200": json({ type: "object" }, "OpenAPI 3.1") }, { security: [] }),
  },
  "/sandboxes": {
    get: op(
      "List the caller's sandboxes (never wakes one)",
      { "200": json(arrayOf("Sandbox"), "Sandboxes"), ...common },
      {
        parameters: [
          {
            name: "label",
            in: "query",
            description: "key=value; repeatable, all must match",
            schema: { type: "array", items: { type: "string" } },
            style: "form",
            explode: true,
          },
        ],
      },
    ),
    post: op(
      "Create a sandbox (idempotent by name)",
      {
        "201": json(ref("Sandbox"), "Created"),
        "200": {
          ...json(ref("Sandbox"), "A sandbox with this name exists and is returned"),
          headers: { "X-Bhatti-Existing": { schema: { const: "true" } } },
        },
        "400": error("Invalid request, cpus/memory over the limit, or a missing secret"),
        "501": error("A v1 feature this server does not have (templates, volumes...)"),
        ...common,
      },
      { requestBody: jsonBody(ref("CreateSandbox"), false) },
    ),
  },
  "/sandboxes/{id}": {
    get: op(
      "Get a sandbox (never wakes it)",
      { "200": json(ref("Sandbox"), "Sandbox"), ...onSandbox },
      {
        parameters: [idParam],
      },
    ),
    patch: op(
      "Update keep_hot, name or labels (keep_hot=true wakes it)",
      { "200": json(ref("Sandbox"), "Sandbox"), "409": error("Name in use"), ...onSandbox },
      { parameters: [idParam], requestBody: jsonBody(ref("UpdateSandbox")) },
    ),
    delete: op(
      "Destroy a sandbox and delete its row",
      {
        "200": json({ type: "object", properties: { status: { const: "destroyed" } } }, "Destroyed"),
        ...onSandbox,
      },
      { parameters: [idParam] },
    ),
  },
  "/sandboxes/{id}/stop": {
    post: op(
      "Cold-snapshot a sandbox",
      { "200": json(ref("Sandbox"), "Stopped"), ...onSandbox },
      {
        parameters: [idParam],
      },
    ),
  },
  "/sandboxes/{id}/start": {
    post: op(
      "Restore a stopped sandbox (force clears the circuit breaker)",
      { "200": json(ref("Sandbox"), "Started"), "409": error("Circuit breaker open"), ...onSandbox },
      {
        parameters: [idParam],
        requestBody: jsonBody({ type: "object", properties: { force: { type: "boolean" } } }, false),
      },
    ),
  },
  "/sandboxes/{id}/exec": {
    post: op(
      "Run a command (JSON result; NDJSON stream with Accept: application/x-ndjson; or detached)",
      {
        "200": {
          description: "Result, stream or detached pid",
          content: {
            "application/json": { schema: { oneOf: [ref("ExecResult"), ref("ExecDetached")] } },
            "application/x-ndjson": { schema: ref("ExecEvent") },
          },
        },
        "400": error("cmd required"),
        ...onSandbox,
      },
      { parameters: [idParam], requestBody: jsonBody(ref("ExecRequest")) },
    ),
  },
  "/sandboxes/{id}/files": {
    get: op(
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
    put: op(
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
    head: op(
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
  "/sandboxes/{id}/sessions": {
    get: op(
      "List TTY and piped sessions",
      { "200": json(arrayOf("SessionInfo"), "Sessions"), ...onSandbox },
      {
        parameters: [idParam],
      },
    ),
  },
  "/sandboxes/{id}/ws": {
    get: op(
      "WebSocket TTY shell: first text frame {type:session}, binary output, {type:resize} text messages, close 1000 on exit",
      { "101": { description: "Switching protocols" }, ...onSandbox },
      {
        parameters: [
          idParam,
          { name: "session", in: "query", schema: { type: "string" } },
          { name: "new", in: "query", schema: { type: "boolean" } },
        ],
      },
    ),
  },
  "/sandboxes/{id}/exec/ws": {
    get: op(
      "WebSocket piped session: first client message {cmd, env?, max_idle_sec?}; text output; {type:exit} then close 1000",
      { "101": { description: "Switching protocols" }, ...onSandbox },
      { parameters: [idParam, { name: "session", in: "query", schema: { type: "string" } }] },
    ),
  },
  "/secrets": {
    get: op("List secret names (never values)", { "200": json(arrayOf("Secret"), "Secrets"), ...common }),
    post: op(
      "Create or replace a secret",
      {
        "201": json(ref("Secret"), "Created"),
        "200": json(ref("Secret"), "Replaced"),
        "400": error("Empty name or value"),
        ...common,
      },
      {
        requestBody: jsonBody({
          type: "object",
          required: ["name", "value"],
          properties: { name: { type: "string" }, value: { type: "string" } },
        }),
      },
    ),
  },
  "/secrets/{name}": {
    delete: op(
      "Delete a secret",
      { "200": json({ type: "object" }, "Deleted"), "404": error("No such secret"), ...common },
      {
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
      },
    ),
  },
  "/users": {
    get: op("List users (admin)", {
      "200": json(arrayOf("User"), "Users"),
      "403": error("Admin only"),
      ...common,
    }),
    post: op(
      "Create a user (admin); the API key is returned once",
      {
        "201": json(ref("User"), "Created"),
        "403": error("Admin only"),
        "409": error("Name in use"),
        ...common,
      },
      {
        requestBody: jsonBody({
          type: "object",
          required: ["name"],
          properties: { name: { type: "string" }, is_admin: { type: "boolean" }, limits: ref("UserLimits") },
        }),
      },
    ),
  },
  "/users/{user}": {
    get: op(
      "Get a user (admins any, others themselves)",
      { "200": json(ref("User"), "User"), "404": error("Not found"), ...common },
      {
        parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }],
      },
    ),
    patch: op(
      "Update a user's limits (admin)",
      { "200": json(ref("User"), "User"), "403": error("Admin only"), ...common },
      {
        parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }],
        requestBody: jsonBody({ type: "object", properties: { limits: ref("UserLimits") } }),
      },
    ),
    delete: op(
      "Delete a user (admin; refused while it owns sandboxes or secrets)",
      {
        "200": json({ type: "object" }, "Deleted"),
        "403": error("Admin only"),
        "409": error("Still owns resources"),
        ...common,
      },
      { parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }] },
    ),
  },
  "/users/{user}/rotate-key": {
    post: op(
      "Replace a user's API key (the old one fails at once)",
      { "200": json(ref("User"), "New key"), ...common },
      {
        parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }],
      },
    ),
  },
  "/events": {
    get: op(
      "Query events newest first (admin)",
      {
        "200": json(
          { type: "object", properties: { events: arrayOf("Event"), total: { type: "integer" } } },
          "Events",
        ),
        "403": error("Admin only"),
        ...common,
      },
      {
        parameters: ["type", "user", "sandbox", "since", "until", "limit", "before_id"].map((name) => ({
          name,
          in: "query",
          schema: { type: "string" },
        })),
      },
    ),
  },
  "/metrics": {
    get: op(
      "Live metrics and history (admin)",
      { "200": json({ type: "object" }, "Metrics"), "403": error("Admin only"), ...common },
      {
        parameters: [
          { name: "since", in: "query", schema: { type: "string" } },
          { name: "limit", in: "query", schema: { type: "integer" } },
        ],
      },
    ),
  },
  "/images": {
    get: op("List images", { "200": json(arrayOf("Image"), "Images"), ...common }),
  },
};

/** The OpenAPI 3.1 document (deterministic, so the committed copy can be compared byte for byte). */
export function openApiDocument(): Record<string, unknown> {
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
      schemas,
    },
    paths,
  };
}

/** The document as committed in docs/openapi.json. */
export function openApiJson(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}
