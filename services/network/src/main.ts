import { join } from "node:path";
import { NetworkService } from "@bhatti/proto";
import { StartupError, runService, serviceSocketPath } from "@bhatti/runtime";
import { createAttachmentFile } from "./adapters/attachment-file.js";
import { enableIpForward } from "./adapters/ip-forward.js";
import { createIpLink } from "./adapters/ip-link.js";
import { createNftables, setNftTableName } from "./adapters/nftables.js";
import { defaultUpstreamHosts, hostResolvers } from "./adapters/resolv-conf.js";
import { createStoreAddressing } from "./adapters/store-addressing.js";
import { networkErrorInterceptor } from "./api/network-error-interceptor.js";
import { createNetworkHandlers } from "./api/network-handlers.js";
import { type Upstream, createUpstreamClient, parseUpstream } from "./dns/dns-forwarder.js";
import { createUserResolver } from "./dns/user-resolver.js";
import { type AddressPlan, createAddressPlan } from "./domain/address-plan.js";
import { setDeviceNamePrefixes } from "./domain/device-names.js";
import { createNetworkManager } from "./domain/network-manager.js";

/** How long the resolvers wait for each upstream (v1: 2 s). */
const DNS_UPSTREAM_TIMEOUT_MS = 2000;
/** How long a reading of the host's resolv.conf is used (it is re-read so a change is seen). */
const RESOLV_CONF_TTL_MS = 5000;

// The network process: serves NetworkService on <socket_dir>/network.sock. It must run in the
// network namespace whose bridges, firewall and forwarding it manages (the host's).
await runService({
  name: "network",
  async setup({ config, logger, shutdown }) {
    setNftTableName(config.network_nft_table);
    setDeviceNamePrefixes(config.network_link_prefix, config.network_netns_prefix);
    let plan: AddressPlan;
    try {
      plan = createAddressPlan(config.network_pool);
    } catch (e) {
      throw new StartupError((e as Error).message);
    }
    const configured = config.dns_upstreams.map((t) => {
      const u = parseUpstream(t);
      if (u === undefined) throw new StartupError(`dns_upstreams: "${t}" is not an IPv4 address[:port]`);
      return u;
    });
    // Not configured: the host's public resolvers (re-read, so a changed host resolver is
    // used), never its loopback stub or private VPC resolver (see defaultUpstreamHosts).
    let fromHost: { upstreams: Upstream[]; readAt: number; skipped: string } | undefined;
    const upstreams = (): readonly Upstream[] => {
      if (configured.length > 0) return configured;
      if (fromHost === undefined || Date.now() - fromHost.readAt > RESOLV_CONF_TTL_MS) {
        const { hosts, skipped } = defaultUpstreamHosts(hostResolvers());
        const skippedText = skipped.join(",");
        if (fromHost === undefined || fromHost.skipped !== skippedText) {
          logger.warn("dns_upstreams is unset: forwarding to the host's public resolvers only", {
            upstreams: hosts,
            skipped_non_public: skipped,
          });
        }
        fromHost = {
          upstreams: hosts.map((h) => ({ host: h, port: 53 })),
          readAt: Date.now(),
          skipped: skippedText,
        };
      }
      return fromHost.upstreams;
    };
    const upstream = createUpstreamClient({ upstreams, timeoutMs: DNS_UPSTREAM_TIMEOUT_MS });
    try {
      enableIpForward();
    } catch (e) {
      throw new StartupError(`cannot enable ip_forward: ${(e as Error).message}`);
    }

    const nft = createNftables();
    const manager = createNetworkManager({
      plan,
      addressing: createStoreAddressing(
        serviceSocketPath(config.socket_dir, "store"),
        plan,
        config.rpc_timeout,
      ),
      ip: createIpLink(),
      nft,
      file: createAttachmentFile(join(config.state_dir, "network", "attachments.json")),
      createResolver: (gateway, directory) =>
        createUserResolver({
          address: gateway,
          upstream,
          directory,
          logger: logger.child({ resolver: gateway }),
        }),
      logger,
    });
    shutdown.add(async () => {
      await manager.close();
      upstream.close();
    });

    const handlers = createNetworkHandlers({
      manager,
      plan,
      nft,
      nftTable: config.network_nft_table,
      upstream,
      upstreams,
    });
    return {
      routes: (router) => router.service(NetworkService, handlers),
      interceptors: [networkErrorInterceptor],
    };
  },
});
