// The guest agent. Sandbox mode: `--config FILE`, started by the engine as tini (PID 1) →
// agent. Standalone mode: `--listen … --forward-listen … [--token-file …] [--user …]`, an
// ordinary process for tests and for trying the protocol.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_CONTROL_PORT, AGENT_FORWARD_PORT, DEFAULT_WORKDIR } from "@bhatti/agent-protocol";
import { applyBootConfig, bootEnv, bootSudoSocket, bootUser, loadBootConfig } from "./boot-config-apply.js";
import { USAGE, UsageError, parseAgentArgs, parseHostPort, type AgentArgs } from "./cli-args.js";
import { currentIdentity, resolveUser, type ExecIdentity } from "./identity.js";
import { createAgentLogger } from "./logger.js";
import { startInitSession } from "./claim/init-session.js";
import { startAgent, type AgentOptions } from "./start-agent.js";

const log = createAgentLogger();
const SANDBOX_RUNTIME_DIR = "/run/bhatti-agent";

/**
 * The resident spawner's binary: BHATTI_AGENT_SPAWNER names it ("off": none, every command
 * forks Node), else the `spawner` beside this bundle (the package's, or agent/dist's).
 * BHATTI_AGENT_SPAWNER_POOL: how many stdio connections it keeps connected ahead of time
 * (default 0 = connect back for every command, see DEFAULT_STDIO_POOL; benches compare).
 */
function spawnerBinary(): { spawner?: string; spawnerPool?: number } {
  const chosen = process.env["BHATTI_AGENT_SPAWNER"];
  if (chosen === "off") return {};
  const path =
    chosen !== undefined && chosen !== "" ? chosen : join(dirname(fileURLToPath(import.meta.url)), "spawner");
  const pool = Number.parseInt(process.env["BHATTI_AGENT_SPAWNER_POOL"] ?? "", 10);
  return existsSync(path) ? { spawner: path, ...(pool >= 0 ? { spawnerPool: pool } : {}) } : {};
}

function standaloneOptions(args: AgentArgs): AgentOptions {
  let user: ExecIdentity = currentIdentity();
  if (args.user !== undefined) {
    const found = resolveUser(args.user);
    if (found === undefined) throw new UsageError(`unknown user ${args.user}`);
    if (process.getuid?.() !== 0 && found.uid !== process.getuid?.()) {
      throw new UsageError(`--user ${args.user} needs the agent to run as root`);
    }
    user = found;
  }
  if (args.sudoSocket !== undefined && process.getuid?.() !== 0) {
    throw new UsageError("--sudo-socket needs the agent to run as root");
  }
  const token = args.tokenFile === undefined ? "" : readFileSync(args.tokenFile, "utf8").trim();
  if (token === "") log.warn("no token: every connection is accepted without AUTH");
  return {
    token,
    user,
    allowRoot: args.allowRoot,
    workdir: args.workdir ?? DEFAULT_WORKDIR,
    // A plain copy: reading process.env goes through the C environment on every access.
    baseEnv: { ...process.env },
    configEnv: {},
    control: parseHostPort(args.listen!),
    forward: parseHostPort(args.forwardListen!),
    ...(args.sudoSocket !== undefined ? { sudoSocket: args.sudoSocket } : {}),
    ...(args.authTimeoutMs !== undefined ? { authTimeoutMs: args.authTimeoutMs } : {}),
    ...spawnerBinary(),
    log,
  };
}

function sandboxOptions(args: AgentArgs): { options: AgentOptions; init: string | undefined } {
  const config = loadBootConfig(args.config!, log);
  applyBootConfig(config, log);
  const user = bootUser(config);
  const sudoSocket = bootSudoSocket(config);
  return {
    options: {
      token: config.token,
      user: { name: user.name, uid: user.uid, gid: user.gid, home: user.home },
      allowRoot: config.allow_root_exec === true,
      workdir: config.workdir ?? DEFAULT_WORKDIR,
      baseEnv: {},
      configEnv: bootEnv(config),
      control: parseHostPort(config.listen?.control ?? `0.0.0.0:${AGENT_CONTROL_PORT}`),
      forward: parseHostPort(config.listen?.forward ?? `0.0.0.0:${AGENT_FORWARD_PORT}`),
      ...(sudoSocket !== undefined ? { sudoSocket } : {}),
      ...(config.template === true ? { template: true } : {}),
      ...(args.authTimeoutMs !== undefined ? { authTimeoutMs: args.authTimeoutMs } : {}),
      ...spawnerBinary(),
      // The sandbox's /run is a root-owned tmpfs: the spawner's socket stays out of the user's /tmp.
      runtimeDir: SANDBOX_RUNTIME_DIR,
      log,
    },
    init: config.init,
  };
}

async function main(): Promise<void> {
  let args: AgentArgs;
  try {
    args = parseAgentArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`agent: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const { options, init } =
    args.config !== undefined ? sandboxOptions(args) : { options: standaloneOptions(args), init: undefined };
  const agent = await startAgent(options);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { signal });
    const force = setTimeout(() => process.exit(0), 2_000);
    force.unref();
    void agent.close().then(() => process.exit(0));
  };
  // Required even behind tini: Node ignores SIGTERM as PID 1 without a handler, and the
  // handler also takes the sessions' process groups down with the agent.
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // One bad connection must never take the agent (and every session) down.
  process.on("uncaughtException", (err) => log.error("uncaught exception", { error: err }));
  process.on("unhandledRejection", (err) => log.error("unhandled rejection", { error: err as Error }));

  if (init !== undefined && init !== "") startInitSession(agent.ctx, init);
  const control = `${agent.controlAddress.address}:${agent.controlAddress.port}`;
  const forward = `${agent.forwardAddress.address}:${agent.forwardAddress.port}`;
  log.info("ready", {
    control,
    forward,
    user: options.user.name,
    uid: options.user.uid,
    ...(agent.sudoSocket !== undefined ? { sudo: agent.sudoSocket } : {}),
  });
  // A stable one-line readiness marker on stdout for supervisors and tests.
  process.stdout.write(`agent: ready control=${control} forward=${forward}\n`);
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`agent: ${message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
