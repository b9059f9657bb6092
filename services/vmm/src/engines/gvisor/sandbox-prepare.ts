import { mkdirSync, rmSync } from "node:fs";
import type { UndoStack } from "@bhatti/runtime";
import type { ImageRecord } from "../../adapters/image-registry.js";
import type { NetworkAttachment } from "../../adapters/sandbox-network.js";
import type { SandboxSpec } from "../../engine/engine.js";
import type { GvisorContext } from "./engine-context.js";
import { mountSandboxFs, unmountSandboxFs } from "./sandbox-disk.js";

/**
 * What a boot needs before its bundle: the sandbox's directories, its disk mounted over the
 * image, and its network attached. Each undo is registered first (the mount and the attach run
 * at once, and either may have half-happened when the other fails); the caller commits or rolls
 * `undo` back.
 */
export async function prepareBootDiskAndNetwork(
  ctx: GvisorContext,
  spec: SandboxSpec,
  image: ImageRecord,
  diskSizeMb: number,
  undo: UndoStack,
): Promise<NetworkAttachment> {
  const layout = ctx.layoutOf(spec.id);
  mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  undo.push("dir", () => rmSync(layout.dir, { recursive: true, force: true }));
  mkdirSync(layout.boot, { recursive: true, mode: 0o700 });
  undo.push("network detach", () => ctx.options.network.detach(spec.id));
  undo.push("unmount", () => unmountSandboxFs(layout));
  const [, net] = await Promise.all([
    ctx.ensureAgentPackage().then(() => mountSandboxFs(layout, image.rootfs, { diskSizeMb })),
    ctx.options.network.attach({ sandboxId: spec.id, userId: spec.userId, sandboxName: spec.name }),
  ]);
  return net;
}
