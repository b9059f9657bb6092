import { lstatSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { AGENT_MOUNT_POINT } from "@bhatti/agent-client";
import { type AgentBootConfig, DEFAULT_SUDO_SOCKET } from "@bhatti/agent-protocol";
import { BOOT_CONFIG_MOUNT_POINT, BOOT_CONFIG_PATH, type GuestInit } from "../../adapters/agent-launch.js";
import type { SandboxCgroups } from "../../adapters/cgroups.js";
import type { ImageRunConfig } from "../../adapters/image-registry.js";
import type { SandboxSpec } from "../../engine/engine.js";
import type { SandboxLayout } from "./layout.js";
import { type VolumeHost, volumeOciMounts } from "../../volumes/volume-host.js";
import { buildOciSpec } from "./oci-spec.js";
import type { GvisorSandboxRecord } from "./sandbox-record.js";

/** What a sandbox's OCI bundle is built from, besides its record. */
export interface BundleHost {
  init: GuestInit;
  cgroups: SandboxCgroups;
  /** The agent package as sandboxes see it: the host's read-only bind (#14). */
  agentPackageMount: string;
  /** Where the host mounts of volumes are (the sources of their binds). */
  volumes: Pick<VolumeHost, "mountPath">;
}

function envMap(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env) {
    const eq = kv.indexOf("=");
    if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** The boot config the agent reads once at start (it holds the secrets; the agent deletes it). */
export function writeBootConfig(
  r: GvisorSandboxRecord,
  spec: SandboxSpec,
  imageUser: string,
  layout: SandboxLayout,
  imageDefaults: ImageRunConfig = { env: [], cmd: [], entrypoint: [], workingDir: "", user: "" },
  imageInit?: string,
  extra: Partial<AgentBootConfig> = {},
): void {
  // The image's boot hook (its boot services) runs first, then the sandbox's own init.
  const init = [imageInit, spec.init].filter((s): s is string => s !== undefined && s !== "").join("\n");
  const home = imageUser === "root" ? "/root" : `/home/${imageUser}`;
  const config: AgentBootConfig = {
    version: 1,
    sandbox_id: r.id,
    token: r.token,
    hostname: r.hostname,
    // The image config's Env and WorkingDir are defaults: the create's env (and each exec's) wins.
    env: { ...envMap(imageDefaults.env), ...spec.env },
    ...(imageDefaults.workingDir === "" ? {} : { workdir: imageDefaults.workingDir }),
    secrets: spec.secrets,
    files: spec.files.map((f) => ({
      path: f.path,
      content: Buffer.from(f.content).toString("base64"),
      mode: (f.mode ?? 0o644).toString(8).padStart(4, "0"),
    })),
    user: { name: imageUser, uid: 1000, gid: 1000, home },
    // gVisor ignores setuid bits (so the image's sudo cannot work): the agent serves sudo
    // for the sandbox user over a local socket instead, and the shim replaces /usr/bin/sudo.
    allow_root_exec: true,
    sudo: { socket: DEFAULT_SUDO_SOCKET },
    ...(init === "" ? {} : { init }),
    ...extra,
  };
  writeFileSync(layout.bootConfig, JSON.stringify(config), { mode: 0o600 });
}

/**
 * resolv.conf names only the per-user resolver (never also a public one: glibc treats
 * NXDOMAIN as final, so a second server would never be asked for sibling names anyway).
 */
export function writeNameFiles(r: GvisorSandboxRecord, layout: SandboxLayout): void {
  mkdirSync(dirname(layout.resolvConf), { recursive: true });
  const dns = r.dnsServer ?? r.gateway;
  writeFileSync(layout.resolvConf, `nameserver ${dns}\noptions timeout:2 attempts:1\n`, { mode: 0o644 });
  writeFileSync(
    layout.hosts,
    `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${r.address}\t${r.hostname}\n`,
    { mode: 0o644 },
  );
}

/** The package's sudo shim, when the image has a sudo to replace (lstat: it may be an absolute link). */
export function sudoShimFor(r: GvisorSandboxRecord, host: BundleHost): string | undefined {
  if (host.init.kind !== "agent") return undefined;
  try {
    lstatSync(join(r.imageRootfs, "usr/bin/sudo"));
  } catch {
    return undefined;
  }
  return join(host.agentPackageMount, "bin/sudo");
}

function launchArgv(init: GuestInit): string[] {
  return init.kind === "agent" ? init.argv(BOOT_CONFIG_PATH) : init.argv();
}

/** Writes the OCI bundle (config.json plus the name files) runsc runs and restores. */
export function writeBundle(r: GvisorSandboxRecord, layout: SandboxLayout, host: BundleHost): void {
  mkdirSync(layout.bundle, { recursive: true });
  writeNameFiles(r, layout);
  const sudoShim = sudoShimFor(r, host);
  const spec = buildOciSpec({
    rootfs: layout.rootfs,
    hostname: r.hostname,
    argv: launchArgv(host.init),
    netnsPath: r.netnsPath,
    cgroupsPath: host.cgroups.ociPath(r.id),
    cpus: r.cpus,
    memoryMb: r.memoryMb,
    pidsLimit: r.pidsLimit,
    limitSwap: host.cgroups.swapAccounting(),
    ...(host.init.kind === "agent" ? { agentPackageDir: host.agentPackageMount } : {}),
    agentMountPoint: AGENT_MOUNT_POINT,
    bootDir: layout.boot,
    bootMountPoint: BOOT_CONFIG_MOUNT_POINT,
    resolvConf: layout.resolvConf,
    hosts: layout.hosts,
    ...(sudoShim === undefined ? {} : { sudoShim }),
    ...(r.runsc === undefined ? {} : { imageMounts: r.runsc.mounts }),
    ...(r.volumes?.length ? { volumeMounts: volumeOciMounts(host.volumes, r.volumes) } : {}),
  });
  writeFileSync(join(layout.bundle, "config.json"), JSON.stringify(spec, null, 2));
}
