import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createAgentClient } from "@bhatti/agent-client";
import { Code, ConnectError } from "@connectrpc/connect";
import { ThermalState, VmmSandboxStatus, VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestInit } from "@bhatti/service-vmm/adapters";
import {
  gvisorFactory,
  type GvisorTestEnv,
  createGvisorTestEnv,
  gvisorLeaks,
  RUNSC_PATH,
} from "./gvisor-factory.js";
import { testSpec } from "./engine-factory.js";

const bundle = fileURLToPath(new URL("../../services/vmm/dist/main.js", import.meta.url));

/**
 * The vmm-service as a process (the bundle), inside the stand-in host netns, wiring sandboxes
 * with its local network: Connect API, errors, and a SIGKILL + restart that must not disturb a
 * running sandbox (it is adopted with the same address, token and memory).
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("vmm-service process", () => {
  let env: GvisorTestEnv;
  let proc: ChildProcess | undefined;
  let socketDir: string;

  const start = async (extraArgs: readonly string[] = []) => {
    const init = env.options.init as Extract<GuestInit, { kind: "agent" }>;
    const net = env.options.network as unknown as { hostNetnsPath: string };
    const hostNetns = net.hostNetnsPath.split("/").pop() as string;
    proc = spawn(
      "nsenter",
      [
        `--net=${env.hostNetnsPath}`,
        "--",
        process.execPath,
        bundle,
        `--state-dir=${env.stateDir}`,
        `--socket-dir=${socketDir}`,
        `--runsc-path=${RUNSC_PATH}`,
        `--runsc-platform=${env.options.platform}`,
        `--agent-package-dir=${init.packageDir}`,
        `--cgroup-parent=${env.options.cgroupParent}`,
        "--default-image=busybox",
        `--vmm-local-network=netns=${hostNetns},bridge=btbr${env.runId},subnet=10.252.${Number.parseInt(env.runId.slice(0, 2), 16)}`,
        ...extraArgs,
      ],
      {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, BHATTI_CONFIG_FILE: join(env.stateDir, "config.yaml") },
      },
    );
    let stderr = "";
    proc.stderr?.on("data", (d) => (stderr += d.toString()));
    const { client, close } = createServiceClient(VmmService, join(socketDir, "vmm.sock"), {
      defaultTimeoutMs: 60_000,
    });
    for (let i = 0; ; i++) {
      try {
        const h = await client.health({}, { timeoutMs: 1000 });
        return { client, close, health: h.health };
      } catch (e) {
        if (i > 100 || proc.exitCode !== null)
          throw new Error(`vmm did not start: ${stderr || (e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  beforeAll(async () => {
    env = await createGvisorTestEnv();
    socketDir = join(env.stateDir, "sock");
    writeFileSync(join(env.stateDir, "config.yaml"), "");
  }, 120_000);

  afterAll(async () => {
    proc?.kill("SIGKILL");
    const leaks = await gvisorLeaks(env).catch(() => ({}));
    await env.teardown();
    expect(Object.values(leaks).flat()).toEqual([]);
  }, 60_000);

  it("creates over Connect, survives a SIGKILL restart, and destroys", async () => {
    let vmm = await start();
    expect(vmm.health?.ready).toBe(true);
    expect(vmm.health?.details["runsc_platform"]).toBe(env.options.platform);
    expect(vmm.health?.details["runsc_version"]).toMatch(/\d/);
    const images = await vmm.client.listImages({});
    expect(images.images.map((i) => i.name)).toContain("busybox");

    const spec = testSpec("busybox");
    const created = await vmm.client.createSandbox({
      spec: { id: spec.id, name: spec.name, memoryMb: 256, env: { A: "1" } },
    });
    const sb = created.sandbox;
    expect(sb?.status).toBe(VmmSandboxStatus.RUNNING);
    expect(sb?.thermal).toBe(ThermalState.HOT);
    const agent = sb?.agent;
    if (!sb || !agent) throw new Error("no sandbox info");
    const client = createAgentClient({
      control: await env.options.dialer.endpoint(agent.host, agent.controlPort),
      forward: await env.options.dialer.endpoint(agent.host, agent.forwardPort),
      token: agent.token,
      pool: false,
    });
    try {
      await client.exec(["sh", "-c", "echo $A-kept > /dev/shm/m"]);

      await expect(vmm.client.getSandboxStatus({ id: "0123456789abcdef" })).rejects.toSatisfy(
        (e) => ConnectError.from(e).code === Code.NotFound,
      );
      await expect(vmm.client.createSandbox({ spec: { name: "x", image: "nope" } })).rejects.toSatisfy(
        (e) => ConnectError.from(e).code === Code.NotFound,
      );
      await expect(vmm.client.getSandboxStatus({ id: "bad" })).rejects.toSatisfy(
        (e) => ConnectError.from(e).code === Code.InvalidArgument,
      );

      // Kill the vmm hard; the sandbox must keep running and be adopted by the next one.
      vmm.close();
      proc?.kill("SIGKILL");
      await new Promise((r) => proc?.once("exit", r));
      expect((await client.exec(["cat", "/dev/shm/m"])).stdout.toString()).toBe("1-kept\n");
      vmm = await start();
      const adopted = await vmm.client.getSandboxStatus({ id: sb.id });
      expect(adopted.sandbox?.thermal).toBe(ThermalState.HOT);
      expect(adopted.sandbox?.agent?.token).toBe(agent.token);

      expect((await vmm.client.pauseSandbox({ id: sb.id })).sandbox?.thermal).toBe(ThermalState.WARM);
      expect((await vmm.client.pauseSandbox({ id: sb.id })).sandbox?.thermal).toBe(ThermalState.WARM);
      const woke = await vmm.client.ensureHot({ id: sb.id });
      expect(woke.from).toBe(ThermalState.WARM);
      expect((await vmm.client.stopSandbox({ id: sb.id })).sandbox?.status).toBe(VmmSandboxStatus.STOPPED);
      expect((await vmm.client.sandboxStats({ id: sb.id })).thermal).toBe(ThermalState.COLD);
      expect((await vmm.client.startSandbox({ id: sb.id })).sandbox?.thermal).toBe(ThermalState.HOT);
      expect((await client.exec(["cat", "/dev/shm/m"])).stdout.toString()).toBe("1-kept\n");
      const list = await vmm.client.listSandboxes({});
      expect(list.sandboxes.map((s) => s.id)).toEqual([sb.id]);

      expect((await vmm.client.destroySandbox({ id: sb.id })).existed).toBe(true);
      expect((await vmm.client.destroySandbox({ id: sb.id })).existed).toBe(false);
    } finally {
      client.close();
      vmm.close();
    }
  });

  it("disk_size_mb reaches the engine; host admission refuses with Unavailable and leaves nothing", async () => {
    const stop = async () => {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc?.once("exit", r));
        proc.kill("SIGKILL");
        await exited;
      }
    };
    await stop();
    let vmm = await start();
    try {
      const spec = testSpec("busybox");
      const created = await vmm.client.createSandbox({
        spec: { id: spec.id, name: spec.name, memoryMb: 256, diskSizeMb: 80 },
      });
      expect(created.sandbox?.status).toBe(VmmSandboxStatus.RUNNING);
      const image = join(env.stateDir, "sandboxes", spec.id, "disk.ext4");
      expect(statSync(image).size).toBe(80 * 1024 * 1024);
      expect((await vmm.client.destroySandbox({ id: spec.id })).existed).toBe(true);
    } finally {
      vmm.close();
    }
    await stop();
    // A reserve as large as the host's memory: no sandbox fits.
    const totalMb = Math.floor(
      Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]) / 1024,
    );
    vmm = await start([`--host-memory-reserve-mb=${totalMb}`]);
    try {
      const spec = testSpec("busybox");
      const err = await vmm.client
        .createSandbox({ spec: { id: spec.id, name: spec.name, memoryMb: 256 } })
        .catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect((err as ConnectError).rawMessage).toMatch(/host capacity: .*memory/);
      expect(existsSync(join(env.stateDir, "sandboxes", spec.id))).toBe(false);
      expect((await vmm.client.listSandboxes({})).sandboxes).toEqual([]);
    } finally {
      vmm.close();
    }
  });
});
