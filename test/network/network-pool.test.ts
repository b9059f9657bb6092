// Address pool and reconciliation against the real store and the real network service
// (inside a stand-in host netns). The pool is a /23: room for two users.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { AttachmentKind, EgressMode } from "@bhatti/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "@bhatti/service-store/testing";
import {
  BLOCKED_WAIT,
  type NetworkProcess,
  type Topology,
  WAN,
  createTopology,
  dnsQuery,
  hostLinks,
  httpGet,
  mustRun,
  ping,
  randomSandboxId,
  removeDir,
  run,
  startNetworkProcess,
} from "./harness.js";

const POOL = "10.212.0.0/23";

let topology: Topology;
let store: StoreProcess;
let network: NetworkProcess;
const usedIds = new Set<string>();

const start = (stateDir?: string) =>
  startNetworkProcess({
    hostNetns: topology.host,
    socketDir: dirname(store.socketPath),
    pool: POOL,
    upstreams: [WAN.server],
    ...(stateDir === undefined ? {} : { stateDir }),
  });

async function attach(userId: string, name: string, egress?: { mode: EgressMode }) {
  const sandboxId = randomSandboxId();
  usedIds.add(sandboxId);
  const res = await network.client.attachSandbox({
    sandboxId,
    userId,
    sandboxName: name,
    kind: AttachmentKind.NETNS,
    ...(egress === undefined ? {} : { egress }),
  });
  if (res.network === undefined) throw new Error("no network");
  return res.network;
}

async function errorOf(p: Promise<unknown>): Promise<ConnectError | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
}

beforeAll(async () => {
  topology = await createTopology({ "allowed.test": WAN.server });
  store = await startStoreProcess();
  network = await start();
});

afterAll(async () => {
  await network?.stop();
  if (store !== undefined) {
    await store.stop();
    removeTestDir(store.stateDir);
  }
  await topology?.destroy(usedIds);
  if (network !== undefined) removeDir(network.stateDir);
});

describe("address pool", () => {
  const poolUser: { sandboxId: string; address: string }[] = [];

  it("gives distinct addresses to concurrent attaches", async () => {
    const nets = await Promise.all(Array.from({ length: 20 }, (_, i) => attach("pool-a", `s${i}`)));
    poolUser.push(...nets);
    const addresses = nets.map((n) => n.address);
    expect(new Set(addresses).size).toBe(20);
    expect(addresses.map((a) => Number(a.split(".")[3])).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 2),
    );
    const links = await hostLinks(topology.host);
    for (const n of nets) {
      expect(links).toContain(n.hostInterface);
      expect(existsSync(n.netnsPath)).toBe(true);
    }
    // Every one of them is wired: the last one reaches the first.
    expect(await ping(`bt-${nets[19]?.sandboxId}`, nets[0]?.address ?? "")).toBe(true);
  });

  it("recovers when the store holds an address the service did not know about", async () => {
    // Another client took the host the service will guess next (.22 after .2-.21).
    const foreign = randomSandboxId();
    await store.client.reserveAddress({
      userId: "pool-a",
      sandboxId: foreign,
      firstHost: 2,
      lastHost: 254,
      requestedHost: 22,
      maxSubnetIndex: 2,
    });
    try {
      const net = await attach("pool-a", "after-guess");
      expect(net.address.endsWith(".23")).toBe(true);
      const addrs = JSON.parse(
        (await run("ip", ["-n", `bt-${net.sandboxId}`, "-j", "-4", "addr", "show", "dev", "eth0"])).stdout,
      ) as { addr_info: { local: string }[] }[];
      expect(addrs[0]?.addr_info.map((a) => a.local)).toEqual([net.address]);
      expect(await ping(`bt-${net.sandboxId}`, net.gateway)).toBe(true);
      await network.client.detachSandbox({ sandboxId: net.sandboxId });
    } finally {
      await store.client.releaseAddress({ sandboxId: foreign });
    }
  });

  it("reuses a released address", async () => {
    const victim = poolUser.find((n) => n.address.endsWith(".5"));
    if (victim === undefined) throw new Error("no .5");
    await network.client.detachSandbox({ sandboxId: victim.sandboxId });
    const next = await attach("pool-a", "replacement");
    expect(next.address).toBe(victim.address);
  });

  it("fails with ResourceExhausted naming the pool when a user's /24 is full", async () => {
    const fillers: string[] = [];
    try {
      for (let i = 0; i < 253; i++) {
        const sandboxId = randomSandboxId();
        fillers.push(sandboxId);
        await store.client.reserveAddress({
          userId: "pool-full",
          sandboxId,
          firstHost: 2,
          lastHost: 254,
          maxSubnetIndex: 2,
        });
      }
      const sandboxId = randomSandboxId();
      usedIds.add(sandboxId);
      const err = await errorOf(
        network.client.attachSandbox({
          sandboxId,
          userId: "pool-full",
          sandboxName: "one-too-many",
          kind: AttachmentKind.NETNS,
        }),
      );
      expect(err?.code).toBe(Code.ResourceExhausted);
      expect(err?.rawMessage).toContain(POOL);
      expect(existsSync(`/run/netns/bt-${sandboxId}`)).toBe(false);

      // Both /24s of the pool now belong to users: a third user gets none.
      const third = randomSandboxId();
      usedIds.add(third);
      const err3 = await errorOf(
        network.client.attachSandbox({
          sandboxId: third,
          userId: "pool-c",
          sandboxName: "x",
          kind: AttachmentKind.NETNS,
        }),
      );
      expect(err3?.code).toBe(Code.ResourceExhausted);
      expect(err3?.rawMessage).toContain(POOL);
    } finally {
      for (const sandboxId of fillers) await store.client.releaseAddress({ sandboxId });
    }
  });
});

describe("start-up", () => {
  it("refuses a pool that is not a /8 to /24 CIDR, with a clear message", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bhatti-test-network-badpool-"));
    try {
      writeFileSync(join(dir, "config.yaml"), "");
      // Inside the stand-in host, so nothing could ever touch the machine's own netns.
      const r = await run("nsenter", [
        `--net=/run/netns/${topology.host}`,
        process.execPath,
        join(dirname(fileURLToPath(import.meta.url)), "../../services/network/dist/main.js"),
        `--config=${join(dir, "config.yaml")}`,
        `--state-dir=${join(dir, "state")}`,
        `--socket-dir=${join(dir, "run")}`,
        "--network-pool=10.0.0.0/25",
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("network_pool 10.0.0.0/25 must be between a /8 and a /24");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("reconciliation after a restart", () => {
  it("removes orphans and restores what exists, keeping policies", async () => {
    const keep = await attach("pool-a", "keep");
    const broken = await attach("pool-a", "broken");
    const denied = await attach("pool-a", "denied", { mode: EgressMode.DENY_ALL });
    const gone = await attach("pool-a", "gone");

    await network.kill(); // a crash: nothing cleaned up
    // While it was down: one sandbox's address went away (destroyed), another lost its veth,
    // and stray product devices appeared.
    await store.client.releaseAddress({ sandboxId: gone.sandboxId });
    await mustRun("ip", ["-n", topology.host, "link", "del", broken.hostInterface]);
    await mustRun("ip", ["-n", topology.host, "link", "add", "bhbr77", "type", "bridge"]);
    await mustRun("ip", [
      "-n",
      topology.host,
      "link",
      "add",
      "bhvdeadbeef00",
      "type",
      "veth",
      "peer",
      "name",
      "btpeer0",
    ]);

    network = await start(network.stateDir);

    const links = await hostLinks(topology.host);
    expect(links).not.toContain(gone.hostInterface);
    expect(existsSync(gone.netnsPath)).toBe(false);
    expect(links).not.toContain("bhbr77");
    expect(links).not.toContain("bhvdeadbeef00");
    expect(links).toContain(keep.hostInterface);
    expect(links).toContain(broken.hostInterface);

    const from = (n: { sandboxId: string }) => `bt-${n.sandboxId}`;
    expect(await ping(from(keep), keep.gateway)).toBe(true);
    expect(await ping(from(broken), keep.address)).toBe(true);
    expect(await httpGet(from(keep), `http://${WAN.server}/`)).toContain("hello");
    expect(await httpGet(from(denied), `http://${WAN.server}/`, BLOCKED_WAIT)).toBeUndefined();
    // The resolver is back, with the surviving names only.
    expect((await dnsQuery(from(keep), keep.gateway, "broken")).answers?.[0]?.value).toBe(broken.address);
    expect((await dnsQuery(from(keep), keep.gateway, "gone.sb")).rcode).toBe(3);
    const got = await network.client.getSandboxAddress({ sandboxId: denied.sandboxId });
    expect(got.network?.egress?.mode).toBe(EgressMode.DENY_ALL);
    expect((await errorOf(network.client.getSandboxAddress({ sandboxId: gone.sandboxId })))?.code).toBe(
      Code.NotFound,
    );

    const health = await network.client.health({});
    expect(health.health?.ready).toBe(true);
    expect(health.health?.details["sandboxes"]).toBe(String(3 + 20)); // + pool-a's
  });

  it("detaches everything, leaving no product device behind", async () => {
    const addresses = await store.client.listAddresses({});
    for (const a of addresses.addresses) await network.client.detachSandbox({ sandboxId: a.sandboxId });
    const links = await hostLinks(topology.host);
    expect(links.filter((l) => /^(bhv|bhbr|bhtap)/.test(l))).toEqual([]);
    for (const id of usedIds) expect(existsSync(`/run/netns/bt-${id}`)).toBe(false);
    const ports = await run("ip", [
      "netns",
      "exec",
      topology.host,
      "nft",
      "list",
      "set",
      "bridge",
      "bhatti",
      "ports",
    ]);
    expect(ports.stdout).not.toContain("bhv");
  });
});
