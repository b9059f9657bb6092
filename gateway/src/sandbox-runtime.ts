import type { GatewayContext } from "./gateway-context.js";
import { type RateLimiter, createRateLimiter } from "./limits/rate-limiter.js";
import { type SandboxManager, createSandboxManager } from "./sandboxes/sandbox-manager.js";
import { type SandboxRefCache, createSandboxRefCache } from "./sandboxes/sandbox-ref-cache.js";
import { type WakeController, createWakeController } from "./wake/wake-controller.js";

/** What the sandbox routes of every surface (REST, WebSocket, Connect) share in one gateway. */
export interface SandboxRuntime {
  readonly wake: WakeController;
  readonly sandboxes: SandboxManager;
  readonly refs: SandboxRefCache;
  readonly limiter: RateLimiter;
}

const runtimes = new WeakMap<GatewayContext, SandboxRuntime>();

/** The gateway's sandbox runtime, created on first use. */
export function sandboxRuntimeOf(gw: GatewayContext): SandboxRuntime {
  let runtime = runtimes.get(gw);
  if (runtime === undefined) {
    const wake = createWakeController(gw.clients, gw.logger.child({ component: "wake" }), {
      agentOperationTimeoutMs: gw.config.agent_op_timeout,
    });
    const refs = createSandboxRefCache();
    runtime = {
      wake,
      refs,
      limiter: createRateLimiter({
        lifecycle: {
          capacity: gw.config.rate_lifecycle_burst,
          perMinute: gw.config.rate_lifecycle_per_minute,
        },
      }),
      sandboxes: createSandboxManager({ clients: gw.clients, wake, refs, logger: gw.logger }),
    };
    runtimes.set(gw, runtime);
  }
  return runtime;
}

export function closeSandboxRuntime(gw: GatewayContext): void {
  runtimes.get(gw)?.wake.close();
  runtimes.delete(gw);
}
