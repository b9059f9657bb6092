import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import formats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUNSC_PATH } from "../engine-conformance/gvisor-factory.js";
import { type HttpResult, type Product, startProduct, waitForSandbox } from "../thermal/product-harness.js";

// Real responses of a real product, validated against the /openapi.json that product serves, with
// a real JSON-Schema validator (ajv, draft 2020-12 as OpenAPI 3.1 uses). Every object schema is
// closed for the check (additionalProperties: false where the document leaves it open), so a field
// the gateway sends but the document does not describe fails too.

type Json = Record<string, unknown>;

interface OpenApiDocument {
  paths: Record<string, Record<string, { responses: Record<string, Json> }>>;
  components: { schemas: Record<string, Json> };
}

/** A copy of a schema with refs pointing into $defs and every described object closed. */
function strictCopy(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strictCopy);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema as Json)) {
    if (k === "$ref" && typeof v === "string") out[k] = v.replace("#/components/schemas/", "#/$defs/");
    // Property names are data, not schemas: copy the map, converting each schema in it.
    else if (k === "properties" && typeof v === "object" && v !== null)
      out[k] = Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, strictCopy(s)]));
    else out[k] = strictCopy(v);
  }
  if (out["properties"] !== undefined && out["additionalProperties"] === undefined)
    out["additionalProperties"] = false;
  return out;
}

/** Validates a response against the document's schema for its operation, status and content type. */
function createContract(doc: OpenApiDocument) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
  formats.default(ajv);
  const defs = strictCopy(doc.components.schemas) as Json;
  const compiled = new Map<string, ValidateFunction>();
  return {
    /** Problems of this response (empty when it matches the document). */
    check(method: string, path: string, res: HttpResult): string[] {
      const where = `${method} ${path} → ${res.status}`;
      const operation = doc.paths[path]?.[method.toLowerCase()];
      if (operation === undefined) return [`${where}: no such operation in the document`];
      const response = operation.responses[String(res.status)];
      if (response === undefined) return [`${where}: status not documented (${res.text.slice(0, 200)})`];
      const content = response["content"] as Record<string, { schema: Json }> | undefined;
      if (content === undefined) return res.text === "" ? [] : [`${where}: body where none is documented`];
      const type =
        String(res.headers["content-type"] ?? "")
          .split(";")[0]
          ?.trim() ?? "";
      const media = content[type];
      if (media === undefined) return [`${where}: content type ${type} not documented`];
      if (type !== "application/json") return [];
      const key = `${method} ${path} ${res.status}`;
      let validate = compiled.get(key);
      if (validate === undefined) {
        validate = ajv.compile({ ...(strictCopy(media.schema) as Json), $defs: defs });
        compiled.set(key, validate);
      }
      if (validate(JSON.parse(res.text))) return [];
      return [`${where}: ${ajv.errorsText(validate.errors)}\n${res.text.slice(0, 500)}`];
    },
  };
}

const runnable = existsSync(RUNSC_PATH);

describe.skipIf(!runnable)("REST responses match the OpenAPI document", () => {
  let product: Product;
  let contract: ReturnType<typeof createContract>;
  let doc: OpenApiDocument;
  const admin = () => ({ authorization: `Bearer ${product.adminKey}` });

  /** One request, its response checked against the document under `template`. */
  async function call(
    method: string,
    path: string,
    template: string,
    options: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<HttpResult> {
    const res = await product.http(method, path, options);
    expect(contract.check(method, template, res)).toEqual([]);
    return res;
  }

  beforeAll(async () => {
    product = await startProduct({ flags: [] });
    const served = await product.http("GET", "/openapi.json");
    if (served.status !== 200) throw new Error(`GET /openapi.json: ${served.status}`);
    doc = served.json<OpenApiDocument>();
    contract = createContract(doc);
  }, 240_000);

  afterAll(async () => {
    await product?.dispose();
  }, 240_000);

  it("the public routes: health and the document itself", async () => {
    await call("GET", "/health", "/health");
    await call("GET", "/openapi.json", "/openapi.json");
  });

  it("a sandbox's life: create, list, get, update, exec, files, sessions, stop, start, destroy", async () => {
    const created = await call("POST", "/sandboxes", "/sandboxes", {
      body: { name: "contract1", labels: { team: "a" } },
    });
    expect(created.status).toBe(201);
    const id = created.json<{ id: string }>().id;
    const again = await call("POST", "/sandboxes", "/sandboxes", { body: { name: "contract1" } });
    expect(again.status).toBe(200);

    const list = await call("GET", "/sandboxes?label=team=a", "/sandboxes");
    expect(list.json<{ id: string }[]>().map((s) => s.id)).toEqual([id]);
    expect((await call("GET", `/sandboxes/${id}`, "/sandboxes/{id}")).status).toBe(200);
    const patched = await call("PATCH", `/sandboxes/${id}`, "/sandboxes/{id}", {
      body: { labels_add: { tier: "x" } },
    });
    expect(patched.json<{ labels: Record<string, string> }>().labels).toEqual({ team: "a", tier: "x" });

    const ran = await call("POST", `/sandboxes/${id}/exec`, "/sandboxes/{id}/exec", {
      body: { cmd: ["sh", "-c", "echo hi; echo oops >&2; exit 3"] },
    });
    expect(ran.json()).toEqual({ exit_code: 3, stdout: "hi\n", stderr: "oops\n" });
    const detached = await call("POST", `/sandboxes/${id}/exec`, "/sandboxes/{id}/exec", {
      body: { cmd: ["sleep", "30"], detach: true },
    });
    expect(detached.json<{ detached: boolean }>().detached).toBe(true);

    // product.http sends JSON, so the file holds the 7 bytes `"hello"`.
    const written = await product.http("PUT", `/sandboxes/${id}/files?path=/tmp/c/a.txt`, { body: "hello" });
    expect(contract.check("PUT", "/sandboxes/{id}/files", written)).toEqual([]);
    expect(written.status).toBe(200);
    const listing = await call("GET", `/sandboxes/${id}/files?path=/tmp/c&ls=true`, "/sandboxes/{id}/files");
    expect(listing.json<{ name: string }[]>().map((f) => f.name)).toContain("a.txt");
    const read = await call("GET", `/sandboxes/${id}/files?path=/tmp/c/a.txt`, "/sandboxes/{id}/files");
    expect(read.text).toBe('"hello"');
    const stat = await call("HEAD", `/sandboxes/${id}/files?path=/tmp/c/a.txt`, "/sandboxes/{id}/files");
    expect(stat.headers["x-file-size"]).toBe("7");

    const ws = await product.websocket(`/sandboxes/${id}/exec/ws`);
    try {
      ws.send(JSON.stringify({ cmd: ["sleep", "30"] }));
      const deadline = Date.now() + 30_000;
      let sessions: unknown[] = [];
      while (sessions.length === 0) {
        if (Date.now() > deadline) throw new Error("the piped session never appeared");
        sessions = (await call("GET", `/sandboxes/${id}/sessions`, "/sandboxes/{id}/sessions")).json<
          unknown[]
        >();
        if (sessions.length === 0) await sleep(100);
      }
    } finally {
      ws.terminate();
    }

    const stopped = await call("POST", `/sandboxes/${id}/stop`, "/sandboxes/{id}/stop");
    expect(stopped.json<{ status: string }>().status).toBe("stopped");
    const stoppedGet = await call("GET", `/sandboxes/${id}`, "/sandboxes/{id}");
    expect(stoppedGet.json<{ stopped_at?: string }>().stopped_at).toBeDefined();
    const started = await call("POST", `/sandboxes/${id}/start`, "/sandboxes/{id}/start");
    expect(started.json<{ status: string }>().status).toBe("running");
    await waitForSandbox(product, id, (s) => s.status === "running");

    const destroyed = await call("DELETE", `/sandboxes/${id}`, "/sandboxes/{id}");
    expect(destroyed.json()).toEqual({ status: "destroyed" });
  }, 240_000);

  it("the check itself refuses what the document does not describe", async () => {
    const created = await call("POST", "/sandboxes", "/sandboxes", { body: { name: "contract2" } });
    const real = created.json<Record<string, unknown>>();
    const fake = (status: number, body: unknown): HttpResult => {
      const text = JSON.stringify(body);
      return {
        status,
        headers: { "content-type": "application/json" },
        text,
        json: <T>() => JSON.parse(text) as T,
      };
    };
    expect(contract.check("GET", "/sandboxes/{id}", fake(200, real))).toEqual([]);
    const { id: _id, ...withoutId } = real;
    expect(contract.check("GET", "/sandboxes/{id}", fake(200, withoutId))).not.toEqual([]);
    expect(contract.check("GET", "/sandboxes/{id}", fake(200, { ...real, secret_field: 1 }))).not.toEqual([]);
    expect(contract.check("GET", "/sandboxes/{id}", fake(200, { ...real, cpus: "2" }))).not.toEqual([]);
    expect(
      contract.check("GET", "/sandboxes/{id}", fake(200, { ...real, created_at: "yesterday" })),
    ).not.toEqual([]);
    expect(contract.check("GET", "/sandboxes/{id}", fake(418, { error: "teapot" }))).not.toEqual([]);
    expect(contract.check("GET", "/sandboxes/{id}", fake(404, { message: "gone" }))).not.toEqual([]);
    expect((await call("DELETE", `/sandboxes/${String(real["id"])}`, "/sandboxes/{id}")).status).toBe(200);
  }, 120_000);

  it("errors: 400 and 404 carry the documented Error body", async () => {
    const bad = await call("POST", "/sandboxes", "/sandboxes", { body: { name: "no spaces allowed" } });
    expect(bad.status).toBe(400);
    const missing = await call("GET", "/sandboxes/nosuch", "/sandboxes/{id}");
    expect(missing.status).toBe(404);
    const missingExec = await call("POST", "/sandboxes/nosuch/exec", "/sandboxes/{id}/exec", {
      body: { cmd: ["true"] },
    });
    expect(missingExec.status).toBe(404);
  });

  it("admin and account routes: users, secrets, events, metrics, images", async () => {
    const user = await call("POST", "/users", "/users", { body: { name: `contract-${product.env.runId}` } });
    expect(user.status).toBe(201);
    const name = user.json<{ name: string }>().name;
    await call("GET", "/users", "/users");
    await call("GET", `/users/${name}`, "/users/{user}");
    await call("PATCH", `/users/${name}`, "/users/{user}", { body: { limits: { max_sandboxes: 3 } } });
    await call("POST", `/users/${name}/rotate-key`, "/users/{user}/rotate-key");
    await call("DELETE", `/users/${name}`, "/users/{user}");

    expect((await call("POST", "/secrets", "/secrets", { body: { name: "K", value: "v" } })).status).toBe(
      201,
    );
    await call("GET", "/secrets", "/secrets");
    await call("DELETE", "/secrets/K", "/secrets/{name}");

    const events = await call("GET", "/events?limit=50", "/events");
    expect(events.json<{ events: unknown[] }>().events.length).toBeGreaterThan(0);
    await call("GET", "/metrics", "/metrics", { headers: admin() });
    await call("GET", "/images", "/images");
    expect((await call("GET", "/metrics", "/metrics")).status).toBe(403);
  });
});
