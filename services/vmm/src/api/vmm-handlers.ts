import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type VmmService, thermalStateOf } from "@bhatti/proto";
import { processHealth, requireSandboxId } from "@bhatti/runtime";
import type { Engine, EngineEvent } from "../engine/engine.js";
import type { ImageRegistry } from "../adapters/image-registry.js";
import { visibleTo } from "../images/domain/image-service.js";
import { infoToProto, specFromProto } from "./proto-mapping.js";

export interface VmmHandlersOptions {
  engine: Engine;
  images: ImageRegistry;
  defaultImage: string;
  /** Extra facts for Health (e.g. store reachability). */
  facts: () => Promise<Record<string, string>>;
}

/**
 * The VmmService handlers, Health included: thin translation between Connect and the Engine.
 * Engine errors are mapped by `engineErrorInterceptor`, once for every call.
 */
export function createVmmHandlers(options: VmmHandlersOptions): ServiceImpl<typeof VmmService> {
  const { engine, images } = options;
  return {
    async health() {
      const h = await engine.health();
      const deps = [{ name: "engine", ready: h.ready, detail: h.detail }];
      return { health: processHealth("vmm", deps, { ...h.facts, ...(await options.facts()) }) };
    },
    async createSandbox(req) {
      const id = req.spec?.id ? requireSandboxId(req.spec.id) : randomBytes(8).toString("hex");
      const created = await engine.create(specFromProto(req.spec, id, options.defaultImage));
      return { sandbox: infoToProto(created) };
    },
    reservePooledSandbox(req) {
      const image = req.image || options.defaultImage;
      const record = images.get(image);
      // Only an image this user may use; anything else simply has no entry.
      if (record === undefined || !visibleTo(record, req.userId) || engine.reservePooled === undefined)
        return { id: "" };
      const id = engine.reservePooled({
        userId: req.userId,
        image,
        cpus: req.cpus,
        memoryMb: req.memoryMb,
        diskSizeMb: req.diskSizeMb,
      });
      return { id: id ?? "" };
    },
    releasePooledSandbox(req) {
      engine.releasePooled?.(requireSandboxId(req.id));
      return {};
    },
    destroySandbox: async (req) => ({ existed: await engine.destroy(requireSandboxId(req.id)) }),
    pauseSandbox: async (req) => ({ sandbox: infoToProto(await engine.pause(requireSandboxId(req.id))) }),
    resumeSandbox: async (req) => ({ sandbox: infoToProto(await engine.resume(requireSandboxId(req.id))) }),
    stopSandbox: async (req) => ({
      sandbox: infoToProto(await engine.stop(requireSandboxId(req.id), { onlyIfWarm: req.onlyIfWarm })),
    }),
    startSandbox: async (req) => ({
      sandbox: infoToProto(await engine.start(requireSandboxId(req.id), { force: req.force })),
    }),
    async ensureHot(req) {
      const r = await engine.ensureHot(requireSandboxId(req.id), { warmOnly: req.warmOnly });
      return { sandbox: infoToProto(r.info), from: thermalStateOf(r.from), wakeMs: r.wakeMs };
    },
    async getSandboxStatus(req) {
      const i = engine.status(requireSandboxId(req.id));
      if (!i) throw new ConnectError(`sandbox ${req.id} not found`, Code.NotFound);
      return { sandbox: infoToProto(i) };
    },
    listSandboxes: async (req) => ({
      sandboxes: engine
        .list()
        .filter((s) => req.userId === "" || s.userId === req.userId)
        .map(infoToProto),
    }),
    async sandboxStats(req) {
      const s = await engine.stats(requireSandboxId(req.id));
      return {
        thermal: thermalStateOf(s.thermal),
        memoryBytes: BigInt(s.memoryBytes),
        memoryLimitBytes: BigInt(s.memoryLimitBytes),
        cpuUsageNs: BigInt(s.cpuUsageNs),
        tasks: s.tasks,
        diskBytes: BigInt(s.diskBytes),
      };
    },
    listImages: async (req) => ({
      images: images
        .list()
        .filter((i) => visibleTo(i, req.userId))
        .map((i) => ({
          name: i.name,
          description: i.description,
          sizeBytes: BigInt(i.sizeBytes),
          builtAt: i.builtAt,
          source: i.source,
          isDefault: i.name === options.defaultImage,
          owner: i.owner,
        })),
    }),
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
              at: timestampFromMs(e.at),
              thermal: thermalStateOf(e.thermal),
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
  };
}
