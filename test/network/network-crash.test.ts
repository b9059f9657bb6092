// Crash consistency of the network service: SIGKILL at named points inside attach and detach
// (BHATTI_CRASH_AT), and torn, empty and missing attachments.json, each followed by a restart
// against the same real store and kernel state. After reconciliation every sandbox is either
// fully attached (address, veth, netns, nft elements) or fully detached (none of them).
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { AttachmentKind, EgressMode } from "@bhatti/proto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "@bhatti/service-store/testing";
import {
  BLOCKED_WAIT,
  type NetworkProcess,
  type Topology,
  WAN,
  createTopology,
  hostLinks,
  httpGet,
  ping,
  randomSandboxId,
  removeDir,
  run,
  startNetworkProcess,
} from "./harness.js";

const POOL = "10.213.0.0/20";
const USER = "crash-u";

let topology: Topology;
let store: StoreProcess;
let network: NetworkProcess | undefined;
let stateDir: string | undefined;
const usedIds = new Set<string>();

const start = async (crashAt?: string) => {
  network = await startNetworkProcess({
    hostNetns: topology.host,
    socketDir: dirname(store.socketPath),
    pool: POOL,
    upstreams: [WAN.server],
    ...(stateDir === undefined ? {} : { stateDir }),
    ...(crashAt === undefined ? {} : { env: { BHATTI_CRASH_AT: crashAt } }),
  });
  stateDir = network.stateDir;
  return network;
};

const attachmentsPath = () => join(stateDir as string, "network", "attachments.json");

function attachRequest(name: string, sandboxId = randomSandboxId()) {
  usedIds.add(sandboxId);
  return { sandboxId, userId: USER, sandboxName: name, kind: AttachmentKind.NETNS };
}

async function attach(name: string) {
  const res = await (network as NetworkProcess).client.attachSandbox(attachRequest(name));
  if (res.network === undefined) throw new Error("no network");
  return res.network;
}

async function nftSet(family: "inet" | "bridge", set: string): Promise<string> {
  return (await run("ip", ["netns", "exec", topology.host, "nft", "list", "set", family, "bhatti", set]))
    .stdout;
}

/** What exists of one sandbox: its address in the store and its kernel and firewall state. */
async function stateOf(sandboxId: string) {
  const addresses = await store.client.listAddresses({});
  const links = await hostLinks(topology.host);
  const veth = `bhv${sandboxId.slice(0, 10)}`;
  return {
    address: addresses.addresses.some((a) => a.sandboxId === sandboxId),
    veth: links.includes(veth),
    netns: existsSync(`/run/netns/bt-${sandboxId}`),
    port: (await nftSet("bridge", "ports")).includes(veth),
  };
}

const ATTACHED = { address: true, veth: true, netns: true, port: true };
const DETACHED = { address: false, veth: false, netns: false, port: false };

/** Waits until the process's output (a pipe, read asynchronously) shows `text`; then asserts it. */
async function outputContains(p: NetworkProcess, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!p.output().includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(p.output()).toContain(text);
}

/** Waits for the injected SIGKILL, then starts the service again without crash points. */
async function crashAndRestart(call: Promise<unknown>): Promise<void> {
  const crashed = network as NetworkProcess;
  const outcome = await call.then(
    () => "answered",
    () => "failed",
  );
  expect(outcome).toBe("failed"); // the process died before it could answer
  await crashed.exited;
  await outputContains(crashed, "crash point network.");
  await crashed.stop();
  await start();
}

beforeAll(async () => {
  topology = await createTopology({ "allowed.test": WAN.server });
  store = await startStoreProcess();
});

afterEach(async () => {
  // Each case leaves the service stopped; the next starts it with its own crash point.
  await network?.stop();
  network = undefined;
});

afterAll(async () => {
  await network?.stop();
  if (store !== undefined) {
    await store.stop();
    removeTestDir(store.stateDir);
  }
  await topology?.destroy(usedIds);
  if (stateDir !== undefined) removeDir(stateDir);
});

describe("SIGKILL mid-attach and mid-detach", () => {
  for (const point of ["network.attach.recorded", "network.attach.devices"]) {
    it(`${point}: the sandbox is fully attached after the restart, and a detach removes it all`, async () => {
      // A sibling attached first, so the user's bridge exists (the early-devices path).
      await start();
      const sibling = await attach("sib");
      await (network as NetworkProcess).stop();
      await start(point);
      const request = attachRequest("victim");
      await crashAndRestart((network as NetworkProcess).client.attachSandbox(request));
      expect(await stateOf(request.sandboxId)).toEqual(ATTACHED);
      expect(await stateOf(sibling.sandboxId)).toEqual(ATTACHED);
      const got = await (network as NetworkProcess).client.getSandboxAddress({
        sandboxId: request.sandboxId,
      });
      expect(await ping(`bt-${request.sandboxId}`, sibling.address)).toBe(true);
      expect(got.network?.address).not.toBe(sibling.address);
      // The vmm saw the attach fail and rolls back with a detach.
      await (network as NetworkProcess).client.detachSandbox({ sandboxId: request.sandboxId });
      await (network as NetworkProcess).client.detachSandbox({ sandboxId: sibling.sandboxId });
      expect(await stateOf(request.sandboxId)).toEqual(DETACHED);
      expect(await stateOf(sibling.sandboxId)).toEqual(DETACHED);
    });
  }

  it("network.attach.recorded for a user's first sandbox: attached after the restart", async () => {
    await start("network.attach.recorded");
    const request = attachRequest("first");
    await crashAndRestart((network as NetworkProcess).client.attachSandbox(request));
    expect(await stateOf(request.sandboxId)).toEqual(ATTACHED);
    await (network as NetworkProcess).client.detachSandbox({ sandboxId: request.sandboxId });
    expect(await stateOf(request.sandboxId)).toEqual(DETACHED);
    expect((await hostLinks(topology.host)).filter((l) => l.startsWith("bhbr"))).toEqual([]);
  });

  it("network.detach.devices: attached again after the restart (devices re-created); the retry detaches", async () => {
    await start("network.detach.devices");
    const victim = await attach("victim");
    await crashAndRestart((network as NetworkProcess).client.detachSandbox({ sandboxId: victim.sandboxId }));
    expect(await stateOf(victim.sandboxId)).toEqual(ATTACHED);
    expect(await ping(`bt-${victim.sandboxId}`, victim.gateway)).toBe(true);
    await (network as NetworkProcess).client.detachSandbox({ sandboxId: victim.sandboxId });
    expect(await stateOf(victim.sandboxId)).toEqual(DETACHED);
  });

  it("network.detach.recorded: no devices or elements after the restart; the retry releases the address", async () => {
    await start("network.detach.recorded");
    const victim = await attach("victim");
    await crashAndRestart((network as NetworkProcess).client.detachSandbox({ sandboxId: victim.sandboxId }));
    expect(await stateOf(victim.sandboxId)).toEqual({ ...DETACHED, address: true });
    const res = await (network as NetworkProcess).client.detachSandbox({ sandboxId: victim.sandboxId });
    expect(res.detached).toBe(true);
    expect(await stateOf(victim.sandboxId)).toEqual(DETACHED);
  });
});

describe("a damaged attachments.json", () => {
  /** Two attached sandboxes (one deny-all), the service stopped, then `damage` applied. */
  async function withDamage(damage: () => void) {
    await start();
    const open = await attach("open");
    const closedRes = await (network as NetworkProcess).client.attachSandbox({
      ...attachRequest("closed"),
      egress: { mode: EgressMode.DENY_ALL, allowCidrs: [], allowHosts: [] },
    });
    const closed = closedRes.network;
    if (closed === undefined) throw new Error("no network");
    await (network as NetworkProcess).kill();
    damage();
    await start();
    return { open, closed };
  }

  async function cleanUp(ids: string[]) {
    for (const sandboxId of ids) {
      await (network as NetworkProcess).client.detachSandbox({ sandboxId });
      expect(await stateOf(sandboxId)).toEqual(DETACHED);
    }
  }

  it("torn: the backup is used, names and policies survive, and the file is whole again", async () => {
    const { open, closed } = await withDamage(() => {
      const text = readFileSync(attachmentsPath(), "utf8");
      writeFileSync(attachmentsPath(), text.slice(0, Math.floor(text.length / 2)));
    });
    const net = network as NetworkProcess;
    expect(await stateOf(open.sandboxId)).toEqual(ATTACHED);
    expect(await stateOf(closed.sandboxId)).toEqual(ATTACHED);
    // The backup is the copy before the last save: it has "open" but not "closed", which is
    // adopted from the store and the kernel, deny-all.
    expect(await httpGet(`bt-${open.sandboxId}`, `http://${WAN.server}/`)).toContain("hello");
    expect(await httpGet(`bt-${closed.sandboxId}`, `http://${WAN.server}/`, BLOCKED_WAIT)).toBeUndefined();
    const got = await net.client.getSandboxAddress({ sandboxId: closed.sandboxId });
    expect(got.network?.egress?.mode).toBe(EgressMode.DENY_ALL);
    await outputContains(net, "attachments file unreadable");
    const doc = JSON.parse(readFileSync(attachmentsPath(), "utf8")) as { sandboxes: unknown[] };
    expect(doc.sandboxes).toHaveLength(2);
    await cleanUp([open.sandboxId, closed.sandboxId]);
  });

  it("empty, and no backup: every sandbox is kept, deny-all, and the service is ready", async () => {
    const { open, closed } = await withDamage(() => {
      writeFileSync(attachmentsPath(), "");
      rmSync(`${attachmentsPath()}.bak`, { force: true });
    });
    const net = network as NetworkProcess;
    expect(await stateOf(open.sandboxId)).toEqual(ATTACHED);
    expect(await stateOf(closed.sandboxId)).toEqual(ATTACHED);
    expect(await ping(`bt-${open.sandboxId}`, open.gateway)).toBe(true);
    // Fail closed: the policy was lost, so the sandbox is deny-all until told otherwise.
    expect(await httpGet(`bt-${open.sandboxId}`, `http://${WAN.server}/`, BLOCKED_WAIT)).toBeUndefined();
    expect((await net.client.health({})).health?.ready).toBe(true);
    await net.client.setEgressPolicy({
      sandboxId: open.sandboxId,
      egress: { mode: EgressMode.ALLOW_ALL, allowCidrs: [], allowHosts: [] },
    });
    expect(await httpGet(`bt-${open.sandboxId}`, `http://${WAN.server}/`)).toContain("hello");
    await cleanUp([open.sandboxId, closed.sandboxId]);
  });

  it("missing, with sandboxes running: nothing is removed as an orphan", async () => {
    const { open, closed } = await withDamage(() => {
      rmSync(attachmentsPath());
      rmSync(`${attachmentsPath()}.bak`, { force: true });
    });
    expect(await stateOf(open.sandboxId)).toEqual(ATTACHED);
    expect(await stateOf(closed.sandboxId)).toEqual(ATTACHED);
    expect(await ping(`bt-${open.sandboxId}`, closed.address)).toBe(true);
    expect(existsSync(attachmentsPath())).toBe(true);
    await cleanUp([open.sandboxId, closed.sandboxId]);
  });
});
