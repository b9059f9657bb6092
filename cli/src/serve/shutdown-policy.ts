import { ThermalService } from "@bhatti/proto";
import { type Logger, type ServerConfig, createServiceClient, serviceSocketPath } from "@bhatti/runtime";
import { ConnectError } from "@connectrpc/connect";

/**
 * Upper bound of the whole snapshot step, so a stuck checkpoint cannot block shutdown for ever.
 * Deliberately longer than rpc_timeout: it spans every sandbox's checkpoint, not one call.
 */
const SNAPSHOT_ALL_TIMEOUT_MS = 5 * 60_000;

/**
 * The `shutdown_policy` step that runs on SIGTERM before the processes are stopped:
 * `leave` does nothing (the next start adopts running sandboxes); `snapshot` asks the thermal
 * service to checkpoint every running sandbox to cold, several in parallel, while the vmm is
 * still up. A sandbox whose checkpoint fails stays running and is adopted next time.
 */
export async function applyShutdownPolicy(config: ServerConfig, logger: Logger): Promise<void> {
  if (config.shutdown_policy !== "snapshot") return;
  const thermal = createServiceClient(ThermalService, serviceSocketPath(config.socket_dir, "thermal"), {
    defaultTimeoutMs: config.rpc_timeout,
  });
  const began = Date.now();
  try {
    const r = await thermal.client.snapshotAll({ parallelism: 10 }, { timeoutMs: SNAPSHOT_ALL_TIMEOUT_MS });
    logger.info("snapshotted sandboxes before stopping", {
      snapshotted: r.snapshotted.length,
      failed: r.failed,
      ms: Date.now() - began,
    });
  } catch (e) {
    logger.warn("snapshotting sandboxes failed; they are left running", {
      error: ConnectError.from(e).rawMessage,
    });
  } finally {
    thermal.close();
  }
}
