/**
 * The OCI runtime spec (config.json) of one gVisor sandbox. Limits follow platform.md §B5:
 * cpus → CFS quota over a 100 ms period, memory → memory.limit_in_bytes (plus the sentry's
 * own overhead), a pids limit (under ptrace every guest thread is a host task, so this also
 * bounds fork bombs). Capabilities are those of a container root; gVisor virtualizes them in
 * its own kernel, and the agent drops to uid 1000 for user commands.
 */
export interface OciSpecInput {
  rootfs: string;
  hostname: string;
  argv: string[];
  netnsPath: string;
  cgroupsPath: string;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  /** Set memory+swap = memory (no swap); only where the kernel accounts swap (v1 memsw files). */
  limitSwap?: boolean;
  /** Host dir with the agent package, mounted read-only; undefined = none. */
  agentPackageDir?: string;
  agentMountPoint: string;
  /** Host dir holding the boot config, mounted read-write so the agent can delete it. */
  bootDir: string;
  bootMountPoint: string;
  /** Host files mounted over /etc/resolv.conf and /etc/hosts; undefined = the image's own. */
  resolvConf?: string;
  hosts?: string;
  /** Host file bound read-only over /usr/bin/sudo (the agent package's shim); undefined = none. */
  sudoShim?: string;
  /** Volume binds (volumes/volume-host.ts), mounted last: after /tmp, /run and the name files. */
  volumeMounts?: Record<string, unknown>[];
  /** Mounts the image asks for (cgroupfs, tmpfs), after the engine's own. */
  imageMounts?: readonly { destination: string; type: string; source: string; options: readonly string[] }[];
}

/** Memory the sentry and gofer need on top of the guest's own (charged to the same cgroup). */
export const SENTRY_OVERHEAD_MB = 128;
export const CFS_PERIOD_US = 100_000;

const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_RAW",
  "CAP_NET_ADMIN",
  "CAP_SYS_CHROOT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_PTRACE",
  "CAP_MKNOD",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
];

export function buildOciSpec(input: OciSpecInput): Record<string, unknown> {
  const mounts: Record<string, unknown>[] = [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777"],
    },
    { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
    { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=755"] },
    {
      destination: input.bootMountPoint,
      type: "bind",
      source: input.bootDir,
      options: ["rbind", "rw", "nosuid", "nodev"],
    },
  ];
  if (input.agentPackageDir !== undefined) {
    mounts.push({
      destination: input.agentMountPoint,
      type: "bind",
      source: input.agentPackageDir,
      options: ["rbind", "ro", "nosuid", "nodev"],
    });
  }
  if (input.sudoShim !== undefined) {
    mounts.push({
      destination: "/usr/bin/sudo",
      type: "bind",
      source: input.sudoShim,
      options: ["rbind", "ro", "nosuid", "nodev"],
    });
  }
  // Like Docker: the sandbox's own resolv.conf and hosts, writable so sudo can still edit them;
  // they live on the sandbox's own disk, so they cannot grow past its quota.
  if (input.resolvConf !== undefined) {
    mounts.push({
      destination: "/etc/resolv.conf",
      type: "bind",
      source: input.resolvConf,
      options: ["rbind", "rw"],
    });
  }
  if (input.hosts !== undefined) {
    mounts.push({ destination: "/etc/hosts", type: "bind", source: input.hosts, options: ["rbind", "rw"] });
  }
  if (input.volumeMounts !== undefined) mounts.push(...input.volumeMounts);
  for (const m of input.imageMounts ?? []) {
    mounts.push({ destination: m.destination, type: m.type, source: m.source, options: [...m.options] });
  }
  const memoryLimit = (input.memoryMb + SENTRY_OVERHEAD_MB) * 1024 * 1024;
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: input.argv,
      env: [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "LANG=C.UTF-8",
      ],
      cwd: "/",
      capabilities: {
        bounding: CAPABILITIES,
        effective: CAPABILITIES,
        permitted: CAPABILITIES,
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1_048_576, soft: 1_048_576 }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts,
    linux: {
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network", path: input.netnsPath },
      ],
      cgroupsPath: input.cgroupsPath,
      resources: {
        // swap = memory + swap (v1 memsw): equal to the limit, so a sandbox never swaps.
        memory:
          input.limitSwap === false ? { limit: memoryLimit } : { limit: memoryLimit, swap: memoryLimit },
        cpu: { quota: Math.round(input.cpus * CFS_PERIOD_US), period: CFS_PERIOD_US },
        pids: { limit: input.pidsLimit },
      },
    },
  };
}
