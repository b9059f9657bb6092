import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { AGENT_PACKAGE_LAYOUT } from "@bhatti/agent-client";
import type { ImageRecord } from "../../../adapters/image-registry.js";
import type { SandboxSpec } from "../../../engine/engine.js";
import { DEFAULT_CPUS, DEFAULT_MEMORY_MB } from "../../../engine/spec-validation.js";
import type { GvisorContext } from "../engine-context.js";
import { sandboxLayout } from "../layout.js";
import { buildTemplate } from "./template-build.js";
import {
  type TemplateManifest,
  type TemplatePaths,
  type TemplateShape,
  readTemplate,
  removeOtherVersions,
  removeTemplateDir,
  sweepTemplateTemps,
  templateKey,
  templatePaths,
  templateWorkDir,
  templatesRoot,
} from "./template-files.js";

/** A ready template a create can restore. */
export interface ReadyTemplate {
  p: TemplatePaths;
  m: TemplateManifest;
}

export type TemplatePick = { template: ReadyTemplate } | { reason: string };

/**
 * Per-image template checkpoints (docs/templates.md): built in the background at vmm start and
 * whenever an image's template is missing or stale; a create of a matching sandbox restores one
 * instead of booting.
 */
export interface Templates {
  readonly root: string;
  /** Removes what a crash left, then builds every configured image's template in the background. */
  start(): void;
  /** The ready template for this create, or why there is none (then a build is scheduled). */
  pick(spec: SandboxSpec, image: ImageRecord, diskSizeMb: number): TemplatePick;
  /** A template a create could not use: removed, and rebuilt in the background. */
  discard(t: ReadyTemplate, why: string): void;
  /** One `image:state` per configured image (ready, building, missing, failed), for Health facts. */
  describe(): string;
  /** Resolves once every build in flight has finished (tests, shutdown). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** After a failed build, the next attempt for that image waits this long. */
const BUILD_RETRY_MS = 60_000;

export function createTemplates(
  ctx: GvisorContext,
  images: readonly string[],
  diskSizeMb: number,
): Templates {
  const { options, log } = ctx;
  const root = templatesRoot(options.stateDir);
  const enabled = new Set(images);
  const shape: TemplateShape = { cpus: DEFAULT_CPUS, memoryMb: DEFAULT_MEMORY_MB, diskSizeMb };
  const building = new Map<string, Promise<void>>();
  const failedAt = new Map<string, number>();
  let closed = false;

  const agentFiles = () =>
    options.init.kind === "agent"
      ? [
          join(options.init.packageDir, AGENT_PACKAGE_LAYOUT.agent),
          join(options.init.packageDir, AGENT_PACKAGE_LAYOUT.node),
        ]
      : [];
  const keyOf = (image: ImageRecord) =>
    templateKey({
      imageDir: dirname(image.rootfs),
      imageRootfs: image.rootfs,
      agentFiles: agentFiles(),
      runscPath: options.runscPath,
      shape,
    });

  /** Starts a background build of `image`'s current template unless one is running or just failed. */
  const schedule = (name: string) => {
    if (closed || building.has(name) || options.init.kind !== "agent") return;
    const last = failedAt.get(name);
    if (last !== undefined && Date.now() - last < BUILD_RETRY_MS) return;
    const run = (async () => {
      const image = ctx.images.get(name);
      if (!image) {
        log?.warn("template: image not installed", { image: name });
        return;
      }
      const key = keyOf(image);
      const p = templatePaths(root, name, key);
      try {
        if (readTemplate(p)) return;
      } catch (e) {
        log?.warn("template: unusable, rebuilding", { image: name, key, error: (e as Error).message });
        removeTemplateDir(p.dir);
      }
      const m = await buildTemplate(ctx, root, image, shape, key, p);
      failedAt.delete(name);
      const stale = removeOtherVersions(root, name, key);
      log?.info("template built", { image: name, key, build_ms: m.buildMs, removed: stale });
    })()
      .catch((e: unknown) => {
        failedAt.set(name, Date.now());
        log?.warn("template build failed", { image: name, error: (e as Error).message });
      })
      .finally(() => building.delete(name));
    building.set(name, run);
  };

  return {
    root,

    start() {
      const swept = sweepTemplateTemps(root);
      // Template sandboxes a crash left mid-boot: adoption already killed their containers
      // and cgroups (no sandbox owns them); their mounts, network and files go here.
      const work = templateWorkDir(root);
      let leftovers: string[] = [];
      try {
        leftovers = readdirSync(work);
      } catch {
        leftovers = [];
      }
      for (const id of leftovers) void ctx.teardown(id, sandboxLayout(work, id));
      if (swept.length > 0 || leftovers.length > 0)
        log?.info("template leftovers removed", { removed: [...swept, ...leftovers] });
      for (const name of enabled) schedule(name);
    },

    pick(spec, image, disk) {
      if (!enabled.has(image.name))
        return { reason: `image ${image.name} has no template (create_template_images)` };
      if (options.init.kind !== "agent") return { reason: "no agent" };
      // What the claim does not carry yet boots normally: volume binds and the image's runsc
      // settings are fixed in the bundle before restore; an image's boot hook and run config
      // (env, working dir) are read from the boot config at first boot.
      if (spec.volumes !== undefined && spec.volumes.length > 0) return { reason: "the create has volumes" };
      if (image.runsc !== undefined || image.init !== undefined)
        return { reason: `image ${image.name} has runsc settings or a boot hook` };
      if (image.runConfig.env.length > 0 || image.runConfig.workingDir !== "")
        return { reason: `image ${image.name} has run config defaults` };
      if (spec.cpus !== shape.cpus || spec.memoryMb !== shape.memoryMb || disk !== shape.diskSizeMb) {
        return {
          reason: `shape ${spec.cpus} cpus/${spec.memoryMb} MiB/${disk} MiB disk is not the template's ${shape.cpus}/${shape.memoryMb}/${shape.diskSizeMb}`,
        };
      }
      const key = keyOf(image);
      const p = templatePaths(root, image.name, key);
      let m: TemplateManifest | undefined;
      try {
        m = readTemplate(p);
      } catch (e) {
        const why = (e as Error).message;
        if (!building.has(image.name)) removeTemplateDir(p.dir);
        schedule(image.name);
        return { reason: `template unusable: ${why}` };
      }
      if (!m) {
        schedule(image.name);
        return { reason: building.has(image.name) ? "template being built" : "no template yet" };
      }
      return { template: { p, m } };
    },

    discard(t, why) {
      log?.warn("template discarded", { image: t.m.image, key: t.m.key, reason: why });
      try {
        removeTemplateDir(t.p.dir);
      } catch {
        rmSync(t.p.dir, { recursive: true, force: true });
      }
      failedAt.delete(t.m.image);
      schedule(t.m.image);
    },

    describe() {
      return [...enabled]
        .map((name) => {
          if (building.has(name)) return `${name}:building`;
          const image = ctx.images.get(name);
          if (!image) return `${name}:no-image`;
          try {
            if (readTemplate(templatePaths(root, name, keyOf(image)))) return `${name}:ready`;
          } catch {
            return `${name}:unusable`;
          }
          return failedAt.has(name) ? `${name}:failed` : `${name}:missing`;
        })
        .join(",");
    },

    async idle() {
      while (building.size > 0) await Promise.all([...building.values()]);
    },

    async close() {
      closed = true;
      await Promise.all([...building.values()]);
    },
  };
}
