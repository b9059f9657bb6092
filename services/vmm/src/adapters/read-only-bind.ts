import { mkdirSync, statSync } from "node:fs";
import { runCommand } from "./command.js";
import { isMounted } from "./rootfs.js";

/**
 * Binds `source` at `target` read-only, nosuid and nodev in the host's mount namespace, so
 * what a sandbox gets from it (the agent package, the sudo shim) cannot be written through
 * runsc's gofer even if the sandbox got past the OCI `ro` option. A bind whose source was
 * replaced (a package upgrade renames a new dir into place) is rebound; sandboxes already
 * running keep their old view, their gofer holds it open.
 */
export async function ensureReadOnlyBind(source: string, target: string): Promise<void> {
  if (isMounted(target)) {
    const s = statSync(source);
    const t = statSync(target);
    if (s.dev === t.dev && s.ino === t.ino) return;
    await runCommand("umount", ["-l", target]);
  }
  mkdirSync(target, { recursive: true, mode: 0o755 });
  await runCommand("mount", ["--bind", source, target]);
  try {
    await runCommand("mount", ["-o", "remount,bind,ro,nosuid,nodev", target]);
  } catch (e) {
    await runCommand("umount", ["-l", target]).catch(() => undefined);
    throw e;
  }
}
