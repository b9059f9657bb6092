import { existsSync } from "node:fs";
import { join } from "node:path";

/** Where one sandbox's files live under `<state_dir>/sandboxes/<id>/`. */
export interface SandboxLayout {
  dir: string;
  record: string;
  bundle: string;
  rootfs: string;
  /**
   * The sandbox's own ext4 image (sparse, `disk_size_mb` long) and where it is loop-mounted.
   * Everything the sandbox can grow lives inside it, so the image size is its disk quota.
   */
  diskImage: string;
  diskMount: string;
  /** Sandboxes created before per-sandbox disks keep their upper dir directly in `dir`. */
  legacyDisk: boolean;
  upper: string;
  work: string;
  boot: string;
  bootConfig: string;
  /** resolv.conf and hosts, bind-mounted over the image's (inside the disk: bounded). */
  resolvConf: string;
  hosts: string;
  checkpoint: string;
  checkpointTmp: string;
  log: string;
}

export function sandboxLayout(sandboxesDir: string, id: string): SandboxLayout {
  const dir = join(sandboxesDir, id);
  const diskImage = join(dir, "disk.ext4");
  const legacyDisk = !existsSync(diskImage) && existsSync(join(dir, "upper"));
  // The quota'd tree: the disk mount, or the sandbox dir itself for a legacy sandbox.
  const data = legacyDisk ? dir : join(dir, "disk");
  return {
    dir,
    record: join(dir, "engine.json"),
    bundle: join(dir, "bundle"),
    rootfs: join(dir, "rootfs"),
    diskImage,
    diskMount: join(dir, "disk"),
    legacyDisk,
    upper: join(data, "upper"),
    work: join(data, "work"),
    boot: join(dir, "boot"),
    bootConfig: join(dir, "boot", "config.json"),
    resolvConf: join(data, "etc", "resolv.conf"),
    hosts: join(data, "etc", "hosts"),
    checkpoint: join(dir, "checkpoint"),
    checkpointTmp: join(dir, "checkpoint.tmp"),
    log: join(dir, "runsc.log"),
  };
}
