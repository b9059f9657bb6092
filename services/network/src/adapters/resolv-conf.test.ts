import { describe, expect, it } from "vitest";
import { PUBLIC_FALLBACK_RESOLVERS, defaultUpstreamHosts, parseResolvConf } from "./resolv-conf.js";

describe("default upstreams (dns_upstreams unset)", () => {
  it("keeps only the host's public nameservers", () => {
    const servers = parseResolvConf("nameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver 9.9.9.9\n");
    expect(defaultUpstreamHosts(servers)).toEqual({
      hosts: ["9.9.9.9"],
      skipped: ["127.0.0.53", "10.0.0.2"],
    });
  });

  it("falls back to public resolvers when the host only has a stub, link-local or VPC resolver", () => {
    expect(defaultUpstreamHosts(["127.0.0.53", "169.254.169.253", "172.31.0.2"]).hosts).toEqual([
      ...PUBLIC_FALLBACK_RESOLVERS,
    ]);
    expect(defaultUpstreamHosts([]).hosts).toEqual([...PUBLIC_FALLBACK_RESOLVERS]);
  });
});
