import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { AGENT_CONTROL_PORT } from "@bhatti/agent-protocol";
import { crashPoint } from "@bhatti/runtime";
import type { ImageRecord } from "../../../adapters/image-registry.js";
import type { SandboxSpec } from "../../../engine/engine.js";
import { DEFAULT_PIDS_LIMIT } from "../../../engine/spec-validation.js";
import { writeBootConfig, writeBundle } from "../bundle.js";
import { quiesceForCheckpoint } from "../checkpoint-quiesce.js";
import type { GvisorContext } from "../engine-context.js";
import { sandboxLayout } from "../layout.js";
import { mountSandboxFs } from "../sandbox-disk.js";
import type { GvisorSandboxRecord } from "../sandbox-record.js";
import {
  type TemplateManifest,
  type TemplatePaths,
  type TemplateShape,
  commitTemplate,
  templateWorkDir,
  tmpPathsOf,
} from "./template-files.js";

/**
 * The network user template sandboxes boot under (a throwaway address in its own subnet, for
 * the vmm to reach the agent while it boots; detached before the template is saved).
 */
export const TEMPLATE_NETWORK_USER = "bhatti-templates";
/** The UTS hostname inside a template until a claim sets the user's. */
export const TEMPLATE_HOSTNAME = "template";

/**
 * Boots the image once as a template sandbox (no user, no env, no secrets), waits for its
 * agent, checkpoints it into `p.tmp`, destroys the container, keeps its disk, and commits the
 * template. The agent is told it is a template: it accepts one CLAIM_REQ later.
 */
export async function buildTemplate(
  ctx: GvisorContext,
  root: string,
  image: ImageRecord,
  shape: TemplateShape,
  key: string,
  p: TemplatePaths,
): Promise<TemplateManifest> {
  const { runsc, cgroups, options, log } = ctx;
  const id = randomBytes(8).toString("hex");
  const layout = sandboxLayout(templateWorkDir(root), id);
  const t = tmpPathsOf(p);
  const t0 = performance.now();
  rmSync(p.tmp, { recursive: true, force: true });
  mkdirSync(p.tmp, { recursive: true, mode: 0o700 });
  const admitted = ctx.admission.admit(
    id,
    "create",
    { memoryMb: shape.memoryMb, diskMb: shape.diskSizeMb },
    ctx.committedMemoryMb(),
  );
  try {
    mkdirSync(layout.boot, { recursive: true, mode: 0o700 });
    await ctx.ensureAgentPackage();
    await mountSandboxFs(layout, image.rootfs, { diskSizeMb: shape.diskSizeMb });
    const net = await options.network.attach({
      sandboxId: id,
      userId: TEMPLATE_NETWORK_USER,
      sandboxName: `template-${image.name}`,
    });
    const now = Date.now();
    const r: GvisorSandboxRecord = {
      version: 1,
      id,
      name: `template-${image.name}`,
      image: image.name,
      imageRootfs: image.rootfs,
      cpus: shape.cpus,
      memoryMb: shape.memoryMb,
      pidsLimit: DEFAULT_PIDS_LIMIT,
      userId: TEMPLATE_NETWORK_USER,
      hostname: TEMPLATE_HOSTNAME,
      createdAt: now,
      token: randomBytes(16).toString("hex"),
      address: net.address,
      gateway: net.gateway,
      dnsServer: net.dnsServer,
      netnsPath: net.netnsPath,
      status: "running",
      thermal: "hot",
      thermalSince: now,
    };
    const spec: SandboxSpec = {
      id,
      name: r.name,
      image: image.name,
      cpus: r.cpus,
      memoryMb: r.memoryMb,
      pidsLimit: r.pidsLimit,
      env: {},
      secrets: {},
      files: [],
      hostname: r.hostname,
      userId: r.userId,
    };
    writeBootConfig(r, spec, image.user, layout, image.runConfig, image.init, { template: true });
    writeBundle(r, layout, ctx);
    const procs = cgroups.ensureUnified(id);
    await runsc.run(id, layout.bundle, { cgroupProcs: [procs], logFile: layout.log });
    await ctx.waitReady(r);
    rmSync(layout.bootConfig, { force: true });
    // The same quiesce as a cold stop: no host connection is left for the save to reset.
    await quiesceForCheckpoint({
      id,
      dialer: options.dialer,
      runsc,
      host: r.address,
      controlPort: AGENT_CONTROL_PORT,
      agentToken: r.token,
      timeoutMs: 5_000,
      log,
    });
    mkdirSync(t.checkpoint, { mode: 0o700 });
    await runsc.checkpoint(id, t.checkpoint);
    if (statSync(join(t.checkpoint, "checkpoint.img")).size === 0)
      throw new Error("checkpoint image is empty");
    crashPoint("vmm.template.after-checkpoint");
    // The container is gone; unmounting flushes its disk, which becomes the template's.
    await ctx.teardown(id, layout, { dir: true });
    renameSync(layout.diskImage, t.disk);
    const manifest: TemplateManifest = {
      version: 1,
      image: image.name,
      imageRootfs: image.rootfs,
      key,
      shape,
      token: r.token,
      hostname: r.hostname,
      createdAt: Date.now(),
      buildMs: Math.round(performance.now() - t0),
    };
    commitTemplate(p, manifest);
    return manifest;
  } catch (e) {
    rmSync(p.tmp, { recursive: true, force: true });
    throw e;
  } finally {
    // Idempotent: after a success only the emptied work dir is left.
    await ctx.teardown(id, layout);
    admitted.release();
  }
}
