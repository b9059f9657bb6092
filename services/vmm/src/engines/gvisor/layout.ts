import { join } from "node:path";

/** Where one sandbox's files live under `<state_dir>/sandboxes/<id>/`. */
export interface SandboxLayout {
  dir: string;
  record: string;
  bundle: string;
  rootfs: string;
  upper: string;
  work: string;
  boot: string;
  bootConfig: string;
  /** resolv.conf and hosts, bind-mounted over the image's. */
  resolvConf: string;
  hosts: string;
  checkpoint: string;
  checkpointTmp: string;
  log: string;
}

export function sandboxLayout(sandboxesDir: string, id: string): SandboxLayout {
  const dir = join(sandboxesDir, id);
  return {
    dir,
    record: join(dir, "engine.json"),
    bundle: join(dir, "bundle"),
    rootfs: join(dir, "rootfs"),
    upper: join(dir, "upper"),
    work: join(dir, "work"),
    boot: join(dir, "boot"),
    bootConfig: join(dir, "boot", "config.json"),
    resolvConf: join(dir, "etc", "resolv.conf"),
    hosts: join(dir, "etc", "hosts"),
    checkpoint: join(dir, "checkpoint"),
    checkpointTmp: join(dir, "checkpoint.tmp"),
    log: join(dir, "runsc.log"),
  };
}
