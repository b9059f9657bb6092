import { existsSync } from "node:fs";
import { join } from "node:path";
import { AGENT_MOUNT_POINT, AGENT_PACKAGE_LAYOUT, agentLaunchArgv } from "@bhatti/agent-client";

/** Where the boot config dir is mounted; the agent deletes the file after reading it. */
export const BOOT_CONFIG_MOUNT_POINT = "/.bhatti-boot";
export const BOOT_CONFIG_PATH = `${BOOT_CONFIG_MOUNT_POINT}/config.json`;

/**
 * How the sandbox's first process is started. `agent`: tini-static as PID 1 running the Node
 * agent from the read-only package (platform.md, "Running the Node-based agent in any image");
 * the engine waits until the agent answers. `plain`: no agent, a sleeping shell as init (engine
 * development only: nothing can exec through the agent, readiness = runsc says running).
 */
export type GuestInit =
  | { kind: "agent"; packageDir: string; argv: (configPath: string) => string[] }
  | { kind: "plain"; argv: () => string[] };

export function createAgentInit(
  packageDir: string,
  argv: (mountPoint: string, configPath: string) => string[] = agentLaunchArgv,
): GuestInit {
  if (
    !existsSync(join(packageDir, AGENT_PACKAGE_LAYOUT.agent)) ||
    !existsSync(join(packageDir, AGENT_PACKAGE_LAYOUT.node))
  ) {
    throw new Error(`agent package ${packageDir} is missing (build it with agent/scripts/build-package.mjs)`);
  }
  return { kind: "agent", packageDir, argv: (configPath) => argv(AGENT_MOUNT_POINT, configPath) };
}

export function createPlainInit(): GuestInit {
  return {
    kind: "plain",
    argv: () => ["/bin/sh", "-c", 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'],
  };
}
