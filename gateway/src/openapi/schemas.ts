import { userLimitFields } from "@bhatti/proto/rest-json";
import { ID_RULE, SANDBOX_NAME_RULE } from "@bhatti/proto/vocabulary";
import { DEFAULT_EXEC_TIMEOUT_SEC, MAX_EXEC_TIMEOUT_SEC } from "../sandboxes/exec-timeout.js";
import type { RouteDoc } from "../rest/router.js";

// The schema values the REST routes carry (see RouteDoc in ../rest/router.ts): shared component
// schemas and the small builders every route's doc uses. The document is assembled from the
// registered routes by ./openapi-document.ts.

export type Schema = Record<string, unknown>;

/** One response of an operation, keyed by status in RouteDoc.responses. */
export type ResponseDoc = Record<string, unknown>;

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
export const arrayOf = (name: string): Schema => ({ type: "array", items: ref(name) });
export const json = (schema: Schema, description: string): ResponseDoc => ({
  description,
  content: { "application/json": { schema } },
});
export const error = (description: string): ResponseDoc => json(ref("Error"), description);
export const jsonBody = (schema: Schema, required = true) => ({
  required,
  content: { "application/json": { schema } },
});
export const idParam = {
  name: "id",
  in: "path",
  required: true,
  description: "Sandbox id or name (scoped to the caller; another user's sandbox is 404).",
  schema: { type: "string" },
};
export const userParam = { name: "user", in: "path", required: true, schema: { type: "string" } };
export const pathQuery = { name: "path", in: "query", required: true, schema: { type: "string" } };
/** The responses every authenticated route can give. */
export const common: Record<string, ResponseDoc> = {
  "401": error("Missing or invalid API key"),
  "429": {
    ...error("Rate limit or quota exceeded"),
    headers: { "Retry-After": { schema: { type: "integer" } } },
  },
  "500": json(ref("InternalError"), "Internal error (detail only in the server log)"),
};
/** The responses of a route on one sandbox. */
export const onSandbox: Record<string, ResponseDoc> = {
  ...common,
  "404": error("No such sandbox for this user"),
};

export const sandboxSchema: Schema = {
  type: "object",
  required: ["id", "name", "status", "created_by", "created_at", "keep_hot", "cpus", "memory_mb", "image"],
  properties: {
    id: { type: "string", pattern: ID_RULE.source },
    name: { type: "string" },
    template_id: { type: "string" },
    engine_id: { type: "string" },
    status: { type: "string", enum: ["creating", "running", "stopped", "unknown", "destroying"] },
    thermal: { type: "string", enum: ["hot", "warm", "cold"], description: "Present while running." },
    thermal_since: { type: "string", format: "date-time", description: "When it entered `thermal`." },
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

/** components.schemas: the shapes more than one operation uses. */
export const componentSchemas: Record<string, Schema> = {
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
      volumes: {
        type: "array",
        maxItems: 24,
        description: "The caller's volumes to mount (see /volumes).",
        items: {
          type: "object",
          required: ["name", "mount"],
          properties: {
            name: { type: "string" },
            mount: { type: "string", description: "Absolute path; not / nor a system directory." },
            read_only: { type: "boolean", default: false },
          },
        },
      },
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
      cmd: {
        type: "array",
        items: { type: "string" },
        minItems: 1,
        description:
          "The command and its arguments (no shell). Its stdin is /dev/null, as with `docker exec` without -i.",
      },
      timeout_sec: {
        type: "integer",
        default: DEFAULT_EXEC_TIMEOUT_SEC,
        description: `1..${MAX_EXEC_TIMEOUT_SEC}; absent or 0 means ${DEFAULT_EXEC_TIMEOUT_SEC}; anything else is a 400.`,
      },
      detach: { type: "boolean" },
      output_file: { type: "string" },
      env: { type: "object", additionalProperties: { type: "string" } },
      cwd: { type: "string" },
    },
  },
  ExecResult: {
    type: "object",
    required: ["exit_code"],
    properties: { exit_code: { type: "integer" }, stdout: { type: "string" }, stderr: { type: "string" } },
  },
  ExecDetached: {
    type: "object",
    required: ["pid", "detached"],
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
    properties: Object.fromEntries(Object.keys(userLimitFields).map((k) => [k, { type: "integer" }])),
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
  Metrics: {
    type: "object",
    required: ["ts", "sandboxes_total", "users_total", "events_total"],
    properties: {
      ts: { type: "string", format: "date-time" },
      sandboxes_total: { type: "integer" },
      sandboxes_by_status: { type: "object", additionalProperties: { type: "integer" } },
      sandboxes_by_thermal: { type: "object", additionalProperties: { type: "integer" } },
      users_total: { type: "integer" },
      users_with_sandboxes: { type: "integer" },
      sandboxes_per_user: { type: "object", additionalProperties: { type: "integer" } },
      host_mem_total_mb: { type: "integer" },
      host_mem_available_mb: { type: "integer" },
      host_disk_total_mb: { type: "integer" },
      host_disk_available_mb: { type: "integer" },
      host_load_1m: { type: "number" },
      events_total: { type: "integer" },
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
  Task: {
    type: "object",
    description: "An image pull, import or save, kept in the vmm's memory (a bounded history).",
    properties: {
      id: { type: "string" },
      type: { type: "string", enum: ["image_pull", "image_import", "image_save"] },
      status: { type: "string", enum: ["running", "completed", "failed"] },
      phase: { type: "string" },
      progress: {
        type: "object",
        properties: {
          bytes: { type: "integer" },
          layers_done: { type: "integer" },
          layers_total: { type: "integer" },
        },
      },
      error: { type: "string" },
      image: { type: "string" },
      result: { type: "string", description: "pulled | exists | imported | saved (empty while running)" },
      digest: { type: "string" },
      created_at: { type: "string" },
      completed_at: { type: "string" },
    },
  },
};

/** A route's operation: summary, responses by status, then parameters and request body. */
export function op(
  summary: string,
  responses: Record<string, ResponseDoc>,
  extra: Pick<RouteDoc, "parameters" | "requestBody"> = {},
): RouteDoc {
  return { summary, ...extra, responses: { ...responses } };
}
