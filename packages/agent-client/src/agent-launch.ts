/**
 * The read-only agent package mounted into every sandbox (built by
 * `agent/scripts/build-package.mjs --out DIR`). Paths are relative to the mount point.
 */
export const AGENT_PACKAGE_LAYOUT = {
  /** Static tini: PID 1, reaps orphans, forwards signals to the agent. */
  tini: "tini-static",
  /** The glibc dynamic loader; Node is started through it so the image needs no libc. */
  loader: "lib/ld-linux-x86-64.so.2",
  /** Node's shared libraries (libc, libstdc++, libm, libgcc_s, libdl, libpthread). */
  libDir: "lib",
  node: "node",
  /** The esbuild bundle of the agent. */
  agent: "agent.mjs",
  /** node-pty, resolved by the bundle's require("node-pty"). */
  nodePty: "node_modules/node-pty",
} as const;

/** Default mount point of the agent package inside a sandbox. */
export const AGENT_MOUNT_POINT = "/.bhatti";

/**
 * V8 flags for the agent: a small young generation keeps idle RSS low; the agent's heap
 * holds little (scrollback rings are 64 KiB each).
 */
export const AGENT_NODE_FLAGS = ["--max-semi-space-size=2", "--max-old-space-size=192"] as const;

/**
 * The exact OCI `process.args` the engine uses to start the agent in a sandbox: tini as
 * PID 1, then Node through the packaged loader (so images without glibc work), then the
 * agent in sandbox mode reading `configPath`. Pass no LD_* variables: `--library-path`
 * affects Node only, never the commands the agent starts.
 */
export function agentLaunchArgv(mountPoint: string, configPath: string): string[] {
  const at = (rel: string) => `${mountPoint.replace(/\/+$/, "")}/${rel}`;
  return [
    at(AGENT_PACKAGE_LAYOUT.tini),
    "--",
    at(AGENT_PACKAGE_LAYOUT.loader),
    "--library-path",
    at(AGENT_PACKAGE_LAYOUT.libDir),
    at(AGENT_PACKAGE_LAYOUT.node),
    ...AGENT_NODE_FLAGS,
    at(AGENT_PACKAGE_LAYOUT.agent),
    "--config",
    configPath,
  ];
}
