import type { GatewayContext } from "../gateway-context.js";
import { type AliasCache, createAliasCache } from "./alias-cache.js";
import { createAppDialer } from "./app-dialer.js";
import { type PreviewProxy, createPreviewProxy } from "./preview-proxy.js";
import { type PublishOperations, createPublishOperations } from "./publish-operations.js";

/** The proxy's parts of one gateway: alias lookups, publish operations and the request router. */
export interface ProxyRuntime {
  readonly aliases: AliasCache;
  readonly publish: PublishOperations;
  readonly preview: PreviewProxy;
}

const runtimes = new WeakMap<GatewayContext, ProxyRuntime>();

/** One per gateway context, made on first use (REST routes, Connect service and server wiring share it). */
export function proxyRuntimeOf(gw: GatewayContext): ProxyRuntime {
  let runtime = runtimes.get(gw);
  if (runtime === undefined) {
    const aliases = createAliasCache(gw.clients);
    const dialer = createAppDialer(gw.runtime.wake);
    runtime = {
      aliases,
      publish: createPublishOperations(gw, aliases, dialer),
      preview: createPreviewProxy(gw, aliases, dialer),
    };
    runtimes.set(gw, runtime);
  }
  return runtime;
}
