import { randomBytes } from "node:crypto";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { VmmService } from "@bhatti/proto";
import { processHealth } from "@bhatti/runtime";
import type { Engine, EngineEvent } from "../engine/engine.js";
import type { ImageRegistry } from "../adapters/image-registry.js";
import { infoToProto, specFromProto, thermalToProto, toConnectError } from "./proto-mapping.js";

export interface VmmRoutesOptions {
  engine: Engine;
  images: ImageRegistry;
  defaultImage: string;
  /** Extra facts for Health (e.g. store reachability). */
  facts: () => Promise<Record<string, string>>;
}

const SANDBOX_ID = /^[0-9a-f]{16}$/;

function requireId(id: string): string {
  if (!SANDBOX_ID.test(id))
    throw new ConnectError(`sandbox id must be 16 lowercase hex chars, got "${id}"`, Code.InvalidArgument);
  return id;
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toConnectError(e);
  }
}

/** The VmmService handlers: thin translation between Connect and the Engine. */
export function vmmRoutes(options: VmmRoutesOptions): (router: ConnectRouter) => void {
  const { engine, images } = options;
  const info = (id: string) => {
    const i = engine.status(requireId(id));
    if (!i) throw new ConnectError(`sandbox ${id} not found`, Code.NotFound);
    return infoToProto(i);
  };
  return (router) =>
    router.service(VmmService, {
      async health() {
        const h = await engine.health();
        const deps = [{ name: "engine", ready: h.ready, detail: h.detail }];
        return { health: processHealth("vmm", deps, { ...h.facts, ...(await options.facts()) }) };
      },
      createSandbox: (req) =>
        guard(async () => {
          const id = req.spec?.id ? requireId(req.spec.id) : randomBytes(8).toString("hex");
          const created = await engine.create(specFromProto(req.spec, id, options.defaultImage));
          return { sandbox: infoToProto(created) };
        }),
      destroySandbox: (req) => guard(async () => ({ existed: await engine.destroy(requireId(req.id)) })),
      pauseSandbox: (req) =>
        guard(async () => ({ sandbox: infoToProto(await engine.pause(requireId(req.id))) })),
      resumeSandbox: (req) =>
        guard(async () => ({ sandbox: infoToProto(await engine.resume(requireId(req.id))) })),
      stopSandbox: (req) =>
        guard(async () => ({ sandbox: infoToProto(await engine.stop(requireId(req.id))) })),
      startSandbox: (req) =>
        guard(async () => ({
          sandbox: infoToProto(await engine.start(requireId(req.id), { force: req.force })),
        })),
      ensureHot: (req) =>
        guard(async () => {
          const r = await engine.ensureHot(requireId(req.id));
          return { sandbox: infoToProto(r.info), from: thermalToProto(r.from), wakeMs: r.wakeMs };
        }),
      getSandboxStatus: (req) => guard(async () => ({ sandbox: info(req.id) })),
      listSandboxes: (req) =>
        guard(async () => ({
          sandboxes: engine
            .list()
            .filter((s) => req.userId === "" || s.userId === req.userId)
            .map(infoToProto),
        })),
      sandboxStats: (req) =>
        guard(async () => {
          const s = await engine.stats(requireId(req.id));
          return {
            thermal: thermalToProto(s.thermal),
            memoryBytes: BigInt(s.memoryBytes),
            memoryLimitBytes: BigInt(s.memoryLimitBytes),
            cpuUsageNs: BigInt(s.cpuUsageNs),
            tasks: s.tasks,
            diskBytes: BigInt(s.diskBytes),
          };
        }),
      listImages: () =>
        guard(async () => ({
          images: images.list().map((i) => ({
            name: i.name,
            description: i.description,
            sizeBytes: BigInt(i.sizeBytes),
            builtAt: i.builtAt,
            source: i.source,
            isDefault: i.name === options.defaultImage,
          })),
        })),
      async *watchEvents(req, ctx) {
        const queue: EngineEvent[] = [];
        let wake: (() => void) | undefined;
        const off = engine.onEvent((e) => {
          if (req.sandboxId !== "" && e.sandboxId !== req.sandboxId) return;
          queue.push(e);
          wake?.();
        });
        const aborted = new Promise<void>((resolve) =>
          ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
        try {
          while (!ctx.signal.aborted) {
            const e = queue.shift();
            if (e) {
              yield {
                kind: e.kind,
                sandboxId: e.sandboxId,
                atMs: BigInt(e.at),
                thermal: thermalToProto(e.thermal),
                durationMs: e.durationMs,
                detail: e.detail,
              };
              continue;
            }
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
            wake = undefined;
          }
        } finally {
          off();
        }
      },
    });
}
