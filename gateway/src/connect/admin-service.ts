import {
  AdminService,
  type ImageStorageSchema,
  type MetricsSnapshot,
  type ServiceHealth,
  type ServiceHealthSchema,
} from "@bhatti/proto";
import { BHATTI_VERSION, type DependencyStatus, processHealth } from "@bhatti/runtime";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { requireAdmin } from "../auth/request-auth.js";
import type { GatewayContext } from "../gateway-context.js";
import { createAdminStoreMethods } from "./admin-store-methods.js";
import { procedureName, callerOf } from "./auth-interceptor.js";

type HealthInit = MessageInitShape<typeof ServiceHealthSchema>;

/** A service that did not answer Health is reported, not dropped, so the operator sees it. */
function unreachable(name: string, error: unknown): HealthInit {
  return {
    name,
    ready: false,
    dependencies: [{ name: "reachable", ready: false, detail: ConnectError.from(error).rawMessage }],
  };
}

async function askHealth(
  name: string,
  call: () => Promise<{ health?: ServiceHealth | undefined }>,
): Promise<HealthInit> {
  try {
    const { health } = await call();
    return health ?? unreachable(name, new Error("empty health response"));
  } catch (e) {
    return unreachable(name, e);
  }
}

/** Health of the four services as seen from the gateway (for Status and the gateway's own readiness). */
export async function collectServiceHealth(gw: GatewayContext, timeoutMs = 2_000): Promise<HealthInit[]> {
  const { store, network, vmm, thermal } = gw.clients;
  const opts = { timeoutMs };
  return Promise.all([
    askHealth("store", () => store.health({}, opts)),
    askHealth("network", () => network.health({}, opts)),
    askHealth("vmm", () => vmm.health({}, opts)),
    askHealth("thermal", () => thermal.health({}, opts)),
  ]);
}

/** The store's live snapshot (host memory and disk, sandbox counts); undefined if it did not answer. */
async function currentUsage(gw: GatewayContext, actingUserId: string): Promise<MetricsSnapshot | undefined> {
  try {
    const { current } = await gw.clients.store.getMetrics({ actingUserId, limit: 1 }, { timeoutMs: 2_000 });
    return current;
  } catch {
    // The store's health entry already says why; status still answers with what it has.
    return undefined;
  }
}

/** How many images there are and how much disk they take; undefined if the vmm did not answer. */
async function imageStorage(
  gw: GatewayContext,
): Promise<MessageInitShape<typeof ImageStorageSchema> | undefined> {
  try {
    const { images } = await gw.clients.vmm.listImages({}, { timeoutMs: 2_000 });
    return { count: images.length, totalBytes: images.reduce((sum, i) => sum + i.sizeBytes, 0n) };
  } catch {
    return undefined;
  }
}

export function registerAdminService(router: ConnectRouter, gw: GatewayContext): void {
  gw.publicProcedures.add(procedureName(AdminService.method.version));
  router.service(AdminService, {
    async status(_req, ctx) {
      const caller = callerOf(ctx);
      requireAdmin(caller);
      const [services, usage, images] = await Promise.all([
        collectServiceHealth(gw),
        currentUsage(gw, caller.id),
        imageStorage(gw),
      ]);
      const dependencies: DependencyStatus[] = services.map((s) => ({
        name: s.name ?? "",
        ready: s.ready === true,
        detail: s.ready === true ? "ok" : "not ready",
      }));
      return {
        services: [processHealth("gateway", dependencies), ...services],
        ...(usage !== undefined ? { usage } : {}),
        ...(images !== undefined ? { images } : {}),
      };
    },
    version: () => ({ version: BHATTI_VERSION }),
    ...createAdminStoreMethods(gw),
  });
}
