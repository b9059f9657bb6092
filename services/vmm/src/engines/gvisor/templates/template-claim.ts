import { mkdirSync, rmSync } from "node:fs";
import { claimAgent } from "@bhatti/agent-client";
import { AGENT_CONTROL_PORT } from "@bhatti/agent-protocol";
import { type UndoStack, crashPoint, createUndoStack } from "@bhatti/runtime";
import type { ImageRecord } from "../../../adapters/image-registry.js";
import type { SandboxSpec } from "../../../engine/engine.js";
import { writeBundle } from "../bundle.js";
import type { GvisorContext } from "../engine-context.js";
import { mountSandboxFs, unmountSandboxFs } from "../sandbox-disk.js";
import { type GvisorSandboxRecord, newRunningRecord, writeRecord } from "../sandbox-record.js";
import { type TemplateManifest, type TemplatePaths, copyTemplateDisk } from "./template-files.js";

/**
 * The template itself failed (its checkpoint did not restore, or its agent did not take the
 * claim): the caller discards it. Other failures (disk space, network) say nothing about it.
 */
export class TemplateUnusableError extends Error {
  override readonly name = "TemplateUnusableError";
}

/** How long a restored template's agent gets to answer the claim. */
const CLAIM_TIMEOUT_MS = 10_000;

/** What `restoreTemplate` leaves running: the record (still with the template's token) and its timings. */
export interface RestoredTemplate {
  record: GvisorSandboxRecord;
  /** The token the restored agent still accepts until it is claimed. */
  templateToken: string;
  /** Milliseconds of the two steps, and of the preparation's parts, for the create's log line. */
  prepareMs: number;
  restoreMs: number;
  spans: string;
}

/**
 * Restores `spec.id` from a template without claiming it: a copy of the template's disk, the
 * user's network (a new netns and address, as a fork gets), `runsc restore` of the template's
 * checkpoint under the sandbox's own container id. The undo steps go on `undo`: the caller
 * commits or rolls them back. The agent still answers only the template's token.
 */
export async function restoreTemplate(
  ctx: GvisorContext,
  spec: SandboxSpec,
  image: ImageRecord,
  tpl: { p: TemplatePaths; m: TemplateManifest },
  undo: UndoStack,
): Promise<RestoredTemplate> {
  const { runsc, cgroups, options } = ctx;
  const layout = ctx.layoutOf(spec.id);
  const t0 = performance.now();
  mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  undo.push("dir", () => rmSync(layout.dir, { recursive: true, force: true }));
  mkdirSync(layout.boot, { recursive: true, mode: 0o700 });
  undo.push("network detach", () => options.network.detach(spec.id));
  undo.push("unmount", () => unmountSandboxFs(layout));
  // When each part of the preparation finished (ms after t0), for the create's log line.
  const spans = { copy: 0, mount: 0, network: 0 };
  const [, net] = await Promise.all([
    ctx
      .ensureAgentPackage()
      .then(() => copyTemplateDisk(tpl.p.disk, layout.diskImage))
      .then(() => {
        spans.copy = performance.now() - t0;
        return mountSandboxFs(layout, image.rootfs);
      })
      .then(() => {
        spans.mount = performance.now() - t0 - spans.copy;
      }),
    options.network.attach({ sandboxId: spec.id, userId: spec.userId, sandboxName: spec.name }).then((n) => {
      spans.network = performance.now() - t0;
      return n;
    }),
  ]);
  const tPrepared = performance.now();
  const r = newRunningRecord({
    ...spec,
    image: { name: image.name, rootfs: image.rootfs },
    net,
    volumes: undefined,
  });
  // The name files (hosts, resolv.conf) are the new sandbox's: its hostname and address.
  writeBundle(r, layout, ctx);
  undo.push("cgroups", () => cgroups.remove(spec.id));
  const procs = cgroups.ensureUnified(spec.id);
  undo.push("runsc delete", () => ctx.killSandbox(spec.id));
  const tBundle = performance.now();
  await runsc
    .restore(spec.id, layout.bundle, tpl.p.checkpoint, {
      cgroupProcs: [procs],
      logFile: layout.log,
      timeoutMs: 60_000,
    })
    .catch((e: unknown) => {
      throw new TemplateUnusableError(`runsc restore: ${(e as Error).message}`, { cause: e });
    });
  crashPoint("vmm.template-create.after-restore");
  const tRestored = performance.now();
  return {
    record: r,
    templateToken: tpl.m.token,
    prepareMs: tPrepared - t0,
    restoreMs: tRestored - tPrepared,
    spans: `disk copy ${spans.copy.toFixed(0)}, mount ${spans.mount.toFixed(0)}, network ${spans.network.toFixed(0)}, bundle and cgroup ${(tBundle - tPrepared).toFixed(0)} ms`,
  };
}

/**
 * The claim: the restored agent (still on `templateToken`) takes the sandbox's own token,
 * hostname, env, secrets and files (what a boot reads from the boot config).
 */
export async function claimRestored(
  ctx: GvisorContext,
  r: GvisorSandboxRecord,
  templateToken: string,
  spec: SandboxSpec,
): Promise<void> {
  await claimAgent(
    await ctx.options.dialer.endpoint(r.address, AGENT_CONTROL_PORT),
    templateToken,
    {
      token: r.token,
      sandbox_id: r.id,
      hostname: r.hostname,
      env: spec.env,
      secrets: spec.secrets,
      files: spec.files.map((f) => ({
        path: f.path,
        content: Buffer.from(f.content).toString("base64"),
        mode: (f.mode ?? 0o644).toString(8).padStart(4, "0"),
      })),
      ...(spec.init ? { init: spec.init } : {}),
    },
    CLAIM_TIMEOUT_MS,
  );
}

/**
 * Creates sandbox `spec.id` from a template: `restoreTemplate`, then the claim. Everything is
 * undone if a step fails, so the caller can fall back to a normal boot with the same id.
 * Returns the record and the step timings.
 */
export async function createFromTemplate(
  ctx: GvisorContext,
  spec: SandboxSpec,
  image: ImageRecord,
  tpl: { p: TemplatePaths; m: TemplateManifest },
): Promise<{ record: GvisorSandboxRecord; detail: string }> {
  const undo = createUndoStack();
  try {
    const restored = await restoreTemplate(ctx, spec, image, tpl, undo);
    const r = restored.record;
    const tRestored = performance.now();
    await claimRestored(ctx, r, restored.templateToken, spec).catch((e: unknown) => {
      throw new TemplateUnusableError(`claim: ${(e as Error).message}`, { cause: e });
    });
    const tClaimed = performance.now();
    writeRecord(ctx.layoutOf(spec.id).record, r);
    undo.commit();
    return {
      record: r,
      detail: `from template ${tpl.m.image}/${tpl.m.key}: prepare ${restored.prepareMs.toFixed(0)} ms, runsc restore ${restored.restoreMs.toFixed(0)} ms, claim ${(tClaimed - tRestored).toFixed(0)} ms (${restored.spans})`,
    };
  } catch (e) {
    for (const f of await undo.rollback()) {
      ctx.log?.warn(`release: ${f.what} failed`, { sandbox: spec.id, error: f.error });
    }
    throw e;
  }
}
