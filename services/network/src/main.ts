import { join } from "node:path";
import { NetworkService } from "@bhatti/proto";
import { StartupError, processHealth, runService, serviceSocketPath } from "@bhatti/runtime";
import { createAttachmentFile } from "./adapters/attachment-file.js";
import { enableIpForward } from "./adapters/ip-forward.js";
import { createIpLink } from "./adapters/ip-link.js";
import { createNftables, setNftTableName } from "./adapters/nftables.js";
import { hostResolvers } from "./adapters/resolv-conf.js";
import { createStoreAddressing } from "./adapters/store-addressing.js";
import { createNetworkHandlers } from "./api/network-handlers.js";
import { type Upstream, parseUpstream } from "./dns/dns-forwarder.js";
import { createUserResolver } from "./dns/user-resolver.js";
import { type AddressPlan, createAddressPlan } from "./domain/address-plan.js";
import { setDeviceNamePrefixes } from "./domain/device-names.js";
import { createNetworkManager } from "./domain/network-manager.js";

/** How long the resolvers wait for each upstream (v1: 2 s). */
const DNS_UPSTREAM_TIMEOUT_MS = 2000;
/** How often Health re-checks that the product's nft table is still there. */
const NFT_CHECK_INTERVAL_MS = 5000;

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
    // Re-read resolv.conf on each query when not configured, so a changed host resolver is used.
    const upstreams = (): readonly Upstream[] =>
      configured.length > 0 ? configured : hostResolvers().map((h) => ({ host: h, port: 53 }));
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
          upstreams,
          timeoutMs: DNS_UPSTREAM_TIMEOUT_MS,
          directory,
          logger: logger.child({ resolver: gateway }),
        }),
      logger,
    });
    shutdown.add(() => manager.close());

    let nftPresent = false;
    let nftCheckedAt = 0;
    const refreshNft = () => {
      nftCheckedAt = Date.now();
      void nft.tablePresent().then((present) => {
        nftPresent = present;
      });
    };
    void manager.ready.then(refreshNft, () => undefined);

    return (router) =>
      router.service(NetworkService, {
        health: () => {
          if (Date.now() - nftCheckedAt > NFT_CHECK_INTERVAL_MS) refreshNft();
          const h = manager.health();
          return {
            health: processHealth(
              "network",
              [
                {
                  name: "nftables",
                  ready: h.ready && nftPresent,
                  detail: nftPresent ? `table inet ${config.network_nft_table}` : "table missing",
                },
                {
                  name: "store",
                  ready: h.ready && h.storeReachable,
                  detail: h.reconcileError ?? (h.ready ? "reconciled" : "reconciling"),
                },
              ],
              {
                pool: plan.poolText,
                users: String(h.users),
                sandboxes: String(h.sandboxes),
                resolvers: String(h.resolvers),
                resolver_errors: String(h.resolverErrors),
                dns_upstreams: upstreams()
                  .map((u) => `${u.host}:${u.port}`)
                  .join(","),
              },
            ),
          };
        },
        ...createNetworkHandlers(manager),
      });
  },
});
