import { Code, ConnectError } from "@connectrpc/connect";
import { AttachmentKind, NetworkService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import type { NetworkAttachRequest, NetworkAttachment, SandboxNetwork } from "./sandbox-network.js";

export interface NetworkServiceClientOptions {
  /** The deadline of every call (the configured `rpc_timeout`). */
  rpcTimeoutMs: number;
  /** The (shorter) deadline of the Health call the engine's own Health makes. */
  healthTimeoutMs: number;
}

/** SandboxNetwork backed by the network service (NETNS attachments). */
export function createNetworkServiceNetwork(
  socketPath: string,
  options: NetworkServiceClientOptions,
): SandboxNetwork & { close(): void } {
  const { client, close } = createServiceClient(NetworkService, socketPath, {
    defaultTimeoutMs: options.rpcTimeoutMs,
  });
  return {
    close,
    async attach(request: NetworkAttachRequest): Promise<NetworkAttachment> {
      const res = await client.attachSandbox({
        sandboxId: request.sandboxId,
        userId: request.userId,
        sandboxName: request.sandboxName,
        kind: AttachmentKind.NETNS,
        requestedAddress: request.requestedAddress ?? "",
      });
      const n = res.network;
      if (!n?.netnsPath || !n.address) {
        throw new ConnectError("network service returned no netns attachment", Code.Internal);
      }
      return {
        netnsPath: n.netnsPath,
        address: n.address,
        prefixLength: n.prefixLength,
        gateway: n.gateway,
        dnsServer: n.dnsServer || n.gateway,
      };
    },
    async detach(sandboxId) {
      await client.detachSandbox({ sandboxId });
    },
    async rename(sandboxId, sandboxName) {
      // The service's ConnectErrors (NotFound, InvalidArgument, Unavailable) pass as they are.
      await client.renameSandbox({ sandboxId, sandboxName });
    },
    async health() {
      try {
        const res = await client.health({}, { timeoutMs: options.healthTimeoutMs });
        return { ready: res.health?.ready ?? false, detail: res.health?.ready ? "ready" : "not ready" };
      } catch (e) {
        return { ready: false, detail: ConnectError.from(e).rawMessage };
      }
    },
  };
}
