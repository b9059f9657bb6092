import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { AttachmentKind, EgressMode, NetworkService } from "@bhatti/proto";
import { describe, expect, it } from "vitest";
import { createAddressPlan } from "../domain/address-plan.js";
import type { AttachRequest } from "../domain/attach.js";
import { describePolicy } from "../domain/egress-policy.js";
import type { NetworkManager, SandboxNetworkView } from "../domain/network-manager.js";
import { NetworkError } from "../domain/network-error.js";
import { networkErrorInterceptor } from "./network-error-interceptor.js";
import { createNetworkHandlers } from "./network-handlers.js";

// The api layer on its own: validation, message mapping and the error interceptor, in memory
// (createRouterTransport) in front of a manager that records requests and fails on demand.
// The real manager is exercised through the real process in test/network.

const sandboxId = "0123456789abcdef";
const plan = createAddressPlan("10.210.0.0/16");

const view: SandboxNetworkView = {
  sandboxId,
  userId: "u1",
  kind: "netns",
  netnsPath: `/run/netns/bt-${sandboxId}`,
  interfaceName: "eth0",
  tapName: "",
  hostInterface: "btv0123456789",
  bridge: "btbr1",
  address: "10.210.1.2",
  prefixLength: 24,
  gateway: "10.210.1.1",
  mac: "02:00:0a:d2:01:02",
  dnsServer: "10.210.1.1",
  egress: { mode: "allow-all", allowCidrs: [], allowHosts: [] },
};

function serve(failWith?: unknown) {
  const attached: AttachRequest[] = [];
  const calls: string[] = [];
  const fail = () => {
    if (failWith !== undefined) throw failWith;
  };
  const manager: NetworkManager = {
    ready: Promise.resolve(),
    async attach(request) {
      calls.push("attach");
      fail();
      attached.push(request);
      return view;
    },
    async detach() {
      calls.push("detach");
      fail();
      return true;
    },
    async get() {
      calls.push("get");
      fail();
      return view;
    },
    async setEgressPolicy(_id, policy) {
      calls.push("setEgressPolicy");
      fail();
      return describePolicy(policy);
    },
    async rename() {
      calls.push("rename");
      fail();
      return view;
    },
    health: () => ({
      ready: true,
      reconcileError: undefined,
      storeReachable: true,
      users: 1,
      sandboxes: 2,
      resolvers: 1,
      resolverErrors: 0,
    }),
    close: async () => undefined,
  };
  const handlers = createNetworkHandlers({
    manager,
    plan,
    nft: { tablePresent: async () => true },
    nftTable: "bt-table",
    upstream: { inFlight: () => 3 },
    upstreams: () => [{ host: "192.0.2.53", port: 53 }],
  });
  const transport = createRouterTransport((router) => router.service(NetworkService, handlers), {
    router: { interceptors: [networkErrorInterceptor] },
  });
  return { client: createClient(NetworkService, transport), attached, calls };
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );

const attachBase = { sandboxId, userId: "u1", sandboxName: "web", kind: AttachmentKind.NETNS };

describe("network handlers", () => {
  it("refuses invalid requests with InvalidArgument before the manager sees them", async () => {
    const { client, calls } = serve();
    const cases: [Promise<unknown>, string][] = [
      [client.attachSandbox({ ...attachBase, sandboxId: "XYZ" }), 'sandbox_id "XYZ"'],
      [client.attachSandbox({ ...attachBase, userId: "a b" }), 'user_id "a b"'],
      [client.attachSandbox({ ...attachBase, sandboxName: "-web" }), 'sandbox_name "-web"'],
      [
        client.attachSandbox({ ...attachBase, kind: AttachmentKind.UNSPECIFIED }),
        "kind must be NETNS or TAP",
      ],
      [
        client.attachSandbox({
          ...attachBase,
          egress: { mode: EgressMode.ALLOW_LIST, allowCidrs: ["10.0.0.0/33"], allowHosts: [] },
        }),
        'invalid CIDR "10.0.0.0/33"',
      ],
      [client.attachSandbox({ ...attachBase, requestedAddress: "192.0.2.10" }), "pool 10.210.0.0/16"],
      [client.attachSandbox({ ...attachBase, requestedAddress: "10.210.1.1" }), "not a usable address"],
      [client.detachSandbox({ sandboxId: "0123" }), 'sandbox_id "0123"'],
      [client.getSandboxAddress({ sandboxId: "" }), 'sandbox_id ""'],
      [client.renameSandbox({ sandboxId: "x", sandboxName: "web" }), 'sandbox_id "x"'],
      [client.renameSandbox({ sandboxId, sandboxName: "web app" }), 'sandbox_name "web app"'],
      [
        client.setEgressPolicy({
          sandboxId,
          egress: { mode: EgressMode.DENY_ALL, allowCidrs: [], allowHosts: ["example.com"] },
        }),
        "only apply to an allow-list policy",
      ],
    ];
    for (const [call, text] of cases) {
      const err = await failure(call);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain(text);
    }
    expect(calls).toEqual([]);
  });

  it("passes a validated request: the kind, no policy when none was sent, the requested address located", async () => {
    const { client, attached } = serve();
    const res = await client.attachSandbox({ ...attachBase, requestedAddress: "10.210.3.7" });
    expect(res.network?.address).toBe(view.address);
    expect(res.network?.kind).toBe(AttachmentKind.NETNS);
    await client.attachSandbox({
      ...attachBase,
      kind: AttachmentKind.TAP,
      egress: { mode: EgressMode.ALLOW_LIST, allowCidrs: ["203.0.113.0/24"], allowHosts: ["*.example.com"] },
    });
    expect(attached).toEqual([
      {
        sandboxId,
        userId: "u1",
        name: "web",
        kind: "netns",
        policy: undefined,
        // Subnet index 1 is the pool's first /24 (10.210.0.0/24).
        requested: { address: "10.210.3.7", index: 4, host: 7 },
      },
      {
        sandboxId,
        userId: "u1",
        name: "web",
        kind: "tap",
        policy: {
          mode: "allow-list",
          cidrs: [{ base: expect.any(Number), prefix: 24 }],
          hosts: ["*.example.com"],
        },
        requested: undefined,
      },
    ]);
  });

  it("maps each domain error to its Connect code, keeping the message; Connect errors pass as they are", async () => {
    const cases: [unknown, Code, string][] = [
      [new NetworkError("not-found", "sandbox x has no address"), Code.NotFound, "sandbox x has no address"],
      [
        new NetworkError("failed-precondition", "attached as tap"),
        Code.FailedPrecondition,
        "attached as tap",
      ],
      [new NetworkError("unavailable", "not ready: reconciling"), Code.Unavailable, "not ready: reconciling"],
      [new NetworkError("internal", "user network is missing"), Code.Internal, "user network is missing"],
      [
        new ConnectError("address pool 10.210.0.0/16 exhausted", Code.ResourceExhausted),
        Code.ResourceExhausted,
        "address pool 10.210.0.0/16 exhausted",
      ],
    ];
    for (const [error, code, message] of cases) {
      const { client } = serve(error);
      for (const call of [
        client.attachSandbox(attachBase),
        client.detachSandbox({ sandboxId }),
        client.getSandboxAddress({ sandboxId }),
        client.setEgressPolicy({ sandboxId }),
        client.renameSandbox({ sandboxId, sandboxName: "web" }),
      ]) {
        const err = await failure(call);
        expect(err.code).toBe(code);
        expect(err.rawMessage).toBe(message);
      }
    }
  });

  it("answers Health from the manager, the nft table and the DNS forwarder", async () => {
    const { client } = serve();
    // The nft table check runs in the background once the manager is ready.
    let health = (await client.health({})).health;
    while (health?.ready !== true) {
      await new Promise((r) => setImmediate(r));
      health = (await client.health({})).health;
    }
    expect(health.name).toBe("network");
    expect(health.dependencies.map((d) => [d.name, d.ready, d.detail])).toEqual([
      ["nftables", true, "table inet bt-table"],
      ["store", true, "reconciled"],
    ]);
    expect(health.details).toMatchObject({
      pool: "10.210.0.0/16",
      users: "1",
      sandboxes: "2",
      resolvers: "1",
      resolver_errors: "0",
      dns_forwarding: "3",
      dns_upstreams: "192.0.2.53:53",
    });
  });
});
