// The packaged agent (agent/scripts/build-package.mjs) started exactly as the engine does
// (agentLaunchArgv) inside a chroot whose root file system is nothing but busybox-static:
// no Node, no glibc. PID 1 is tini, in a private PID and mount namespace.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AgentClient, agentLaunchArgv, createAgentClient } from "@bhatti/agent-client";
import type { AgentBootConfig } from "@bhatti/agent-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const canRun = process.getuid?.() === 0 && existsSync("/usr/bin/tini-static") && existsSync("/bin/busybox");

async function freePort(): Promise<number> {
  const s = createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

describe.skipIf(!canRun)("agent package in a busybox-only chroot", () => {
  let work: string;
  let rootfs: string;
  let sandbox: ChildProcess;
  let client: AgentClient;
  let output = "";
  const token = "0123456789abcdef0123456789abcdef";

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-pkg-"));
    const pkg = join(work, "pkg");
    execFileSync(process.execPath, [join(repoRoot, "agent/scripts/build-package.mjs"), "--out", pkg], {
      stdio: "pipe",
    });

    rootfs = join(work, "rootfs");
    for (const d of ["bin", "proc", "dev", ".bhatti", "run", "etc"])
      mkdirSync(join(rootfs, d), { recursive: true });
    mkdirSync(join(rootfs, "tmp"));
    chmodSync(join(rootfs, "tmp"), 0o1777);
    copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
    chmodSync(join(rootfs, "bin/busybox"), 0o755);
    const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean);
    for (const applet of applets)
      if (applet !== "busybox") symlinkSync("busybox", join(rootfs, "bin", applet));

    const [control, forward] = [await freePort(), await freePort()];
    const config: AgentBootConfig = {
      version: 1,
      token,
      env: { FROM_CONFIG: "cfg" },
      secrets: { API_KEY: "s3cret" },
      files: [
        {
          path: "/home/user/notes/hello.txt",
          content: Buffer.from("hi from boot").toString("base64"),
          mode: "0600",
        },
      ],
      listen: { control: `127.0.0.1:${control}`, forward: `127.0.0.1:${forward}` },
    };
    writeFileSync(join(rootfs, "run/agent.json"), JSON.stringify(config), { mode: 0o600 });

    const argv = agentLaunchArgv("/.bhatti", "/run/agent.json")
      .map((a) => `'${a}'`)
      .join(" ");
    const script = [
      "mount --make-rprivate /",
      `mount --bind '${pkg}' '${rootfs}/.bhatti'`,
      `mount -o remount,bind,ro '${rootfs}/.bhatti'`,
      `mount -t proc proc '${rootfs}/proc'`,
      `mount --rbind /dev '${rootfs}/dev'`,
      `exec chroot '${rootfs}' ${argv}`,
    ].join(" && ");
    sandbox = spawn("unshare", ["--mount", "--pid", "--fork", "--kill-child", "sh", "-c", script], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    sandbox.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    sandbox.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    client = createAgentClient({
      control: { host: "127.0.0.1", port: control },
      forward: { host: "127.0.0.1", port: forward },
      token,
    });
    await client.waitReady({ timeoutMs: 20_000 });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    if (sandbox !== undefined && sandbox.exitCode === null) {
      for (const pid of childrenOf(sandbox.pid!)) process.kill(pid, "SIGKILL");
      await once(sandbox, "exit");
    }
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("the root file system has no glibc and no Node of its own", () => {
    expect(readdirSync(rootfs).sort()).toEqual([
      ".bhatti",
      "bin",
      "dev",
      "etc",
      "home",
      "proc",
      "run",
      "tmp",
    ]);
    expect(existsSync(join(rootfs, "lib"))).toBe(false);
    expect(existsSync(join(rootfs, "usr"))).toBe(false);
  });

  it("applied the boot config and removed it", async () => {
    expect(existsSync(join(rootfs, "run/agent.json"))).toBe(false);
    const file = join(rootfs, "home/user/notes/hello.txt");
    expect(readFileSync(file, "utf8")).toBe("hi from boot");
    expect(statSync(file).uid).toBe(1000);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const r = await client.exec(["sh", "-c", 'echo "$(id -u):$(id -g) $PWD $HOME $FROM_CONFIG $API_KEY"']);
    expect(r.stdout.toString()).toBe("1000:1000 /home/user /home/user cfg s3cret\n");
    await expect(client.exec(["id"], { root: true })).rejects.toThrow("root exec is not allowed");
  });

  it("runs file operations, a TTY session (node-pty from the package) and forwarding", async () => {
    await client.writeFile("/tmp/x.txt", "payload");
    expect((await client.readFileBuffer("/tmp/x.txt")).data.toString()).toBe("payload");
    const s = await client.openTtySession(["sh"]);
    await s.write("tty; exit 3\r");
    let out = "";
    let exit: number | undefined;
    for await (const ev of s) {
      if (ev.type === "output") out += ev.data.toString();
      else exit = ev.exitCode;
    }
    expect(out).toContain("/dev/pts/");
    expect(exit).toBe(3);
  });

  it("tini is PID 1 and reaps orphans: no zombies", async () => {
    await client.exec(["sh", "-c", "sleep 0.1 & sleep 0.1 & exit 0"]);
    await new Promise((r) => setTimeout(r, 400));
    const ps = (await client.exec(["ps", "-o", "pid,stat,comm"])).stdout.toString();
    expect(ps).toMatch(/^\s*1 \S+\s+tini-static$/m);
    expect(ps.split("\n").filter((l) => / Z/.test(l))).toEqual([]);
  });

  it("SIGTERM to PID 1 stops the agent and its sessions cleanly", async () => {
    await client.openPipedSession(["sleep", "300"]).then((s) => s.detach());
    const [tini] = childrenOf(sandbox.pid!);
    expect(tini).toBeGreaterThan(0);
    process.kill(tini!, "SIGTERM");
    const [code] = (await once(sandbox, "exit")) as [number];
    expect(code).toBe(0);
    expect(output).toContain('"msg":"stopping"');
  });
});
