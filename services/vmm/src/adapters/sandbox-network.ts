/**
 * The network a sandbox's engine plugs into. The product implementation is the
 * NetworkService client (network-service-client.ts); tests that run without the network
 * service use a netns+veth+bridge inside a test "host" namespace (local-netns-network.ts).
 */
export interface NetworkAttachment {
  /** e.g. /run/netns/bhatti-<id>; runsc joins it. */
  netnsPath: string;
  address: string;
  prefixLength: number;
  gateway: string;
  dnsServer: string;
}

export interface NetworkAttachRequest {
  sandboxId: string;
  userId: string;
  sandboxName: string;
  /** Keep this address (restore); empty = any free one. */
  requestedAddress?: string;
}

export interface SandboxNetwork {
  /**
   * Creates the sandbox's netns and address, or re-applies address, link and default route
   * for an attached sandbox (required before every runsc run and restore).
   */
  attach(request: NetworkAttachRequest): Promise<NetworkAttachment>;
  /** Removes the netns and releases the address; unknown sandboxes are fine. */
  detach(sandboxId: string): Promise<void>;
  /**
   * Changes the name the user's resolver answers for an attached sandbox (a pool entry
   * attached under a placeholder gets its real name at claim). Touches no device, so unlike a
   * second attach it is safe while runsc runs. NotFound if the sandbox is not attached.
   */
  rename(sandboxId: string, sandboxName: string): Promise<void>;
  /** Readiness for Health. */
  health(): Promise<{ ready: boolean; detail: string }>;
}
