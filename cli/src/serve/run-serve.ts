import { existsSync, rmSync } from "node:fs";
import {
  BHATTI_VERSION,
  ConfigError,
  PROCESS_NAMES,
  SERVICE_NAMES,
  type ProcessName,
  configKeys,
  configToFlags,
  createLogger,
  envNameOf,
  installProcessFaultPolicy,
  isSocketLive,
  loadConfig,
  serviceSocketPath,
  type ConfigKey,
  type ServerConfig,
} from "@bhatti/runtime";
import { CliError } from "../cli-error.js";
import { createHealthProbe } from "./health-probe.js";
import { findInstallRoot, processScript } from "./install-root.js";
import { checkDirectories, checkListenAddress, waitForOldServices } from "./preflight.js";
import { applyShutdownPolicy } from "./shutdown-policy.js";
import { acquireSupervisorLock } from "./supervisor-lock.js";
import { createSupervisor } from "./supervisor.js";

function loadServeConfig(argv: readonly string[]): ServerConfig {
  try {
    const loaded = loadConfig({ argv });
    if (loaded.rest.length > 0) {
      throw new CliError(`unknown argument: ${loaded.rest.join(" ")}`, "see bhatti serve --help");
    }
    return loaded.config;
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, "see docs/configuration.md");
    throw e;
  }
}

/**
 * Children get exactly the supervisor's resolved config: defaults plus flags for every changed
 * key, no config file and no BHATTI_<KEY> variables that could disagree.
 */
function childEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(configKeys) as ConfigKey[]) delete env[envNameOf(key)];
  delete env["BHATTI_CONFIG_FILE"];
  return env;
}

/** Removes socket files that no process answers on (left by a child killed with SIGKILL). */
async function removeStaleSockets(config: ServerConfig): Promise<void> {
  for (const name of SERVICE_NAMES) {
    const path = serviceSocketPath(config.socket_dir, name);
    if (existsSync(path) && !(await isSocketLive(path, 200))) rmSync(path, { force: true });
  }
}

/** `bhatti serve`: runs the four services and the gateway as children until SIGTERM/SIGINT. */
export async function runServe(argv: readonly string[]): Promise<void> {
  const config = loadServeConfig(argv);
  const root = findInstallRoot();
  const scripts = Object.fromEntries(PROCESS_NAMES.map((n) => [n, processScript(root, n)])) as Record<
    ProcessName,
    string
  >;
  checkDirectories(config);
  const lock = await acquireSupervisorLock(config.socket_dir);
  const logger = createLogger({
    service: "serve",
    level: config.log_level,
    write: (line) => process.stderr.write(`serve   | ${line}`),
  });
  // An uncaught exception here would leave the children without a supervisor: log it and exit
  // (they notice and stop); a stray rejection is logged and the supervisor keeps running.
  installProcessFaultPolicy(logger);
  const probe = createHealthProbe(config);
  const supervisor = createSupervisor({
    scripts,
    args: ["--config=/dev/null", ...configToFlags(config, { changedOnly: true })],
    env: childEnvironment(),
    probe,
    logger,
    stopGraceMs: config.shutdown_timeout + 2_000,
  });

  let firstSignalAt: number | undefined;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      // A repeat within a moment is the same request (e.g. a group kill plus a direct one).
      if (firstSignalAt !== undefined) {
        if (Date.now() - firstSignalAt < 1_000) return;
        logger.warn("second signal: killing every process", { signal });
        supervisor.kill();
        return;
      }
      firstSignalAt = Date.now();
      logger.info("stopping", { signal, shutdown_policy: config.shutdown_policy });
      void applyShutdownPolicy(config, logger)
        .then(() => supervisor.stop())
        .catch((e: unknown) => logger.error("stopping failed", { error: e }))
        .then(resolve);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    process.on("SIGHUP", onSignal);
  });

  try {
    // Processes of a killed `bhatti serve` notice its death and exit; give them a moment.
    const oldFound = await waitForOldServices(config, 10_000);
    await checkListenAddress(config, oldFound ? 10_000 : 0);
    logger.info("starting", { version: BHATTI_VERSION, root });
    await supervisor.start();
    await stopped;
  } catch (e) {
    // Stopped by a signal during start-up: that is a normal stop, not a failure.
    if (firstSignalAt === undefined) throw e;
  } finally {
    await supervisor.stop();
    probe.close();
    await removeStaleSockets(config);
    await lock.release();
  }
  logger.info("stopped");
}
