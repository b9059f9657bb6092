import type { Logger, ServerConfig } from "@bhatti/runtime";
import { type RateLimiter, createRateLimiter } from "./limits/rate-limiter.js";
import { type SandboxAgent, createSandboxAgent } from "./sandboxes/sandbox-agent.js";
import { type SandboxManager, createSandboxManager } from "./sandboxes/sandbox-manager.js";
import { type SandboxRefCache, createSandboxRefCache } from "./sandboxes/sandbox-ref-cache.js";
import type { ServiceClients } from "./service-clients.js";
import { type SnapshotManager, createSnapshotManager } from "./snapshots/snapshot-manager.js";
import { type VolumeOperations, createVolumeOperations } from "./volumes/volume-operations.js";
import { type WakeController, createWakeController } from "./wake/wake-controller.js";

/** What the sandbox routes of every surface (REST, WebSocket, Connect) share in one gateway. */
export interface SandboxRuntime {
  readonly wake: WakeController;
  /** Sandbox CRUD and lifecycle. */
  readonly sandboxes: SandboxManager;
  /** Exec, files and sessions inside a sandbox. */
  readonly agent: SandboxAgent;
  /** Named snapshots: create, list, delete, resume (fork or rewind). */
  readonly snapshots: SnapshotManager;
  readonly refs: SandboxRefCache;
  readonly limiter: RateLimiter;
  /** The caller's volumes (also attached by sandbox create). */
  readonly volumes: VolumeOperations;
  /** Stops the wake controller's watches and reports. */
  close(): void;
}

/** Built once per gateway, by createGateway. */
export function createSandboxRuntime(
  clients: ServiceClients,
  config: ServerConfig,
  logger: Logger,
): SandboxRuntime {
  const wake = createWakeController(clients, logger.child({ component: "wake" }), {
    agentOperationTimeoutMs: config.agent_op_timeout,
  });
  const refs = createSandboxRefCache();
  const volumes = createVolumeOperations({
    clients,
    limits: { minMb: config.volume_min_size_mb, maxMb: config.volume_max_size_mb },
    logger: logger.child({ component: "volumes" }),
  });
  const sandboxes = createSandboxManager({ clients, wake, refs, logger, volumes });
  return {
    volumes,
    wake,
    refs,
    sandboxes,
    agent: createSandboxAgent({ sandboxes, wake }),
    snapshots: createSnapshotManager({ clients, sandboxes, wake, logger, volumes }),
    limiter: createRateLimiter({
      lifecycle: {
        capacity: config.rate_lifecycle_burst,
        perMinute: config.rate_lifecycle_per_minute,
      },
    }),
    close: () => wake.close(),
  };
}
