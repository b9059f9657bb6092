// The packaged agent (agent/scripts/build-package.mjs) started exactly as the engine does
// (agentLaunchArgv) inside a chroot whose root file system is nothing but busybox-static:
// no Node, no glibc. PID 1 is tini, in a private PID and mount namespace.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  closeSync,
  copyFileSync,
  openSync,
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

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../..");
const canRun = process.getuid?.() === 0 && existsSync("/usr/bin/tini-static") && existsSync("/bin/busybox");
// Where install.sh puts runsc (scripts/install-runsc.sh), or the usual places.
const RUNSC = [
  process.env["BHATTI_RUNSC_PATH"],
  "/usr/local/lib/bhatti/runsc",
  "/usr/bin/runsc",
  "/usr/local/bin/runsc",
]
  .filter((p): p is string => p !== undefined && p !== "")
  .find((p) => existsSync(p));
const hasRunsc = canRun && RUNSC !== undefined;

/** A rootfs holding only busybox-static (no libc, no Node). */
function makeBusyboxRootfs(rootfs: string): void {
  for (const d of ["bin", "proc", "dev", ".bhatti", "run", "etc"])
    mkdirSync(join(rootfs, d), { recursive: true });
  mkdirSync(join(rootfs, "tmp"));
  chmodSync(join(rootfs, "tmp"), 0o1777);
  copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
  chmodSync(join(rootfs, "bin/busybox"), 0o755);
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean);
  for (const applet of applets) if (applet !== "busybox") symlinkSync("busybox", join(rootfs, "bin", applet));
}

function buildPackage(out: string): void {
  execFileSync(process.execPath, [join(repoRoot, "agent/scripts/build-package.mjs"), "--out", out], {
    stdio: "pipe",
  });
}

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

/** Runs `script` (which ends by exec'ing into a chroot) in private mount and PID namespaces. */
function spawnInPrivateNamespaces(script: string, output: "pipe" | "ignore"): ChildProcess {
  return spawn("unshare", ["--mount", "--pid", "--fork", "--kill-child", "sh", "-c", script], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdio: output === "pipe" ? ["ignore", "pipe", "pipe"] : "ignore",
  });
}

function loopbackAgentClient(control: number, forward: number, token: string): AgentClient {
  return createAgentClient({
    control: { host: "127.0.0.1", port: control },
    forward: { host: "127.0.0.1", port: forward },
    token,
  });
}

/** Signals what `unshare` started (its PID 1 takes the namespace down with it) and waits. */
async function stopNamespaces(sandbox: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (sandbox === undefined || sandbox.exitCode !== null) return;
  for (const pid of childrenOf(sandbox.pid!)) process.kill(pid, signal);
  await once(sandbox, "exit");
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
      init: "echo init-ran as $(id -u); sleep 300",
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
    sandbox = spawnInPrivateNamespaces(script, "pipe");
    sandbox.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    sandbox.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    client = loopbackAgentClient(control, forward, token);
    await client.waitReady({ timeoutMs: 20_000 });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await stopNamespaces(sandbox, "SIGKILL");
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

  it("has no sudo channel when the boot config does not enable it", async () => {
    expect(existsSync(join(rootfs, "run/bhatti"))).toBe(false);
    const r = await client.exec(["/.bhatti/bin/sudo", "-n", "id", "-u"]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout.toString()).toBe("");
    expect(r.stderr.toString()).toBe("sudo: bhatti sudo service is not available in this sandbox\n");
  });

  it('runs the init script as the TTY session "init", as the sandbox user', async () => {
    const init = (await client.listSessions()).find((x) => x.session_id === "init");
    expect(init).toMatchObject({
      tty: true,
      running: true,
      argv: "sh -c echo init-ran as $(id -u); sleep 300",
    });
    const s = await client.attachSession("init");
    let out = "";
    for await (const ev of s) {
      if (ev.type === "output") out += ev.data.toString();
      if (out.includes("init-ran as 1000")) break;
    }
    expect(out).toContain("init-ran as 1000");
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

// The sudo channel as the engine wires it: the boot config enables the socket and the
// package's bin/sudo is bind-mounted read-only over the image's /usr/bin/sudo. Commands come
// in through the TCP control port as uid 1000, exactly like a user's `bhatti exec`.
describe.skipIf(!canRun)("sudo in a busybox-only chroot", () => {
  let work: string;
  let rootfs: string;
  let sandbox: ChildProcess;
  let client: AgentClient;
  const token = "00112233445566778899aabbccddeeff";

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-pkg-sudo-"));
    const pkg = join(work, "pkg");
    buildPackage(pkg);
    rootfs = join(work, "rootfs");
    makeBusyboxRootfs(rootfs);
    // The image's own sudo, which the engine shadows.
    mkdirSync(join(rootfs, "usr/bin"), { recursive: true });
    writeFileSync(join(rootfs, "usr/bin/sudo"), "#!/bin/sh\necho image sudo cannot run >&2; exit 1\n", {
      mode: 0o4755,
    });
    mkdirSync(join(rootfs, "root"), { mode: 0o700 });
    writeFileSync(
      join(rootfs, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    );
    const [control, forward] = [await freePort(), await freePort()];
    const config: AgentBootConfig = {
      version: 1,
      token,
      allow_root_exec: true,
      sudo: { socket: "/run/bhatti/sudo.sock" },
      env: { PATH: "/usr/bin:/bin" },
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
      `mount --bind '${pkg}/bin/sudo' '${rootfs}/usr/bin/sudo'`,
      `mount -o remount,bind,ro '${rootfs}/usr/bin/sudo'`,
      `mount -t proc proc '${rootfs}/proc'`,
      `mount --rbind /dev '${rootfs}/dev'`,
      `exec chroot '${rootfs}' ${argv}`,
    ].join(" && ");
    sandbox = spawnInPrivateNamespaces(script, "ignore");
    client = loopbackAgentClient(control, forward, token);
    await client.waitReady({ timeoutMs: 20_000 });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await stopNamespaces(sandbox, "SIGKILL");
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("`sudo` is the shim, and `sudo -n id -u` prints 0 for uid 1000", async () => {
    const r = await client.exec(["sh", "-c", 'echo "$(id -u) $(command -v sudo)"; sudo -n id -u']);
    expect(r.stdout.toString()).toBe("1000 /usr/bin/sudo\n0\n");
    expect(r.stderr.toString()).toBe("");
    expect(statSync(join(rootfs, "run/bhatti/sudo.sock")).mode & 0o777).toBe(0o666);
    expect(statSync(join(rootfs, "run/bhatti")).mode & 0o777).toBe(0o755);
  });

  it("creates a root-owned /etc file, relays a pipe, and passes exit codes on", async () => {
    const write = await client.exec(["sudo", "sh", "-c", "echo ok > /etc/bhatti-sudo-test"]);
    expect(write.exitCode).toBe(0);
    expect(readFileSync(join(rootfs, "etc/bhatti-sudo-test"), "utf8")).toBe("ok\n");
    expect(statSync(join(rootfs, "etc/bhatti-sudo-test")).uid).toBe(0);
    // Without sudo the same write is refused.
    expect((await client.exec(["sh", "-c", "echo no > /etc/bhatti-user-test"])).exitCode).not.toBe(0);
    const tee = await client.exec([
      "sh",
      "-c",
      "echo x | sudo tee /etc/bhatti-tee >/dev/null; cat /etc/bhatti-tee",
    ]);
    expect(tee.stdout.toString()).toBe("x\n");
    expect((await client.exec(["sh", "-c", "printf 'abc' | sudo cat"])).stdout.toString()).toBe("abc");
    expect((await client.exec(["sudo", "sh", "-c", "exit 7"])).exitCode).toBe(7);
    const other = await client.exec(["sudo", "-u", "nobody", "true"]);
    expect(other.exitCode).toBe(1);
    expect(other.stderr.toString()).toContain('running commands as "nobody" is not supported');
  });

  it("gives a TTY to `sudo tty` in a TTY session, and `sudo -i` a root login shell", async () => {
    const s = await client.openTtySession(["sh"]);
    await s.write("sudo tty; sudo -i; exit 3\r");
    let out = "";
    let exit: number | undefined;
    let sentRootCommands = false;
    for await (const ev of s) {
      if (ev.type === "output") out += ev.data.toString();
      else exit = ev.exitCode;
      // The root shell's prompt ("#" for uid 0; busybox then asks for the cursor position).
      if (!sentRootCommands && /# (?:\x1b\[6n)?$/.test(out)) {
        sentRootCommands = true;
        await s.write("echo root-$(id -u) in $PWD; exit\r");
      }
    }
    expect(out).toMatch(/\/dev\/pts\/\d+/);
    expect(out).toContain("root-0 in /root");
    expect(exit).toBe(3);
  });
});

const DEBIAN_IMAGE = "/var/lib/bhatti/images/minimal";
const hasDebianImage = canRun && existsSync(join(DEBIAN_IMAGE, "image.json"));

// The same package in a Debian 12 image (built by images/minimal/build.sh), through a
// throw-away overlay so the image itself is never written. Skipped when that image is absent.
describe.skipIf(!hasDebianImage)("agent package in a Debian image chroot", () => {
  let work: string;
  let sandbox: ChildProcess;
  let client: AgentClient;
  const token = "fedcba9876543210fedcba9876543210";

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-pkg-debian-"));
    buildPackage(join(work, "pkg"));
    for (const d of ["upper", "overlay-work", "merged", "boot"]) mkdirSync(join(work, d));
    const [control, forward] = [await freePort(), await freePort()];
    const config: AgentBootConfig = {
      version: 1,
      token,
      user: { name: "lohar", uid: 1000, gid: 1000, home: "/home/lohar" },
      listen: { control: `127.0.0.1:${control}`, forward: `127.0.0.1:${forward}` },
    };
    writeFileSync(join(work, "boot/config.json"), JSON.stringify(config));
    const merged = join(work, "merged");
    const argv = agentLaunchArgv("/.bhatti", "/.bhatti-boot/config.json")
      .map((a) => `'${a}'`)
      .join(" ");
    const script = [
      "mount --make-rprivate /",
      `mount -t overlay overlay -o lowerdir=${DEBIAN_IMAGE}/rootfs,upperdir=${work}/upper,workdir=${work}/overlay-work ${merged}`,
      `mkdir -p ${merged}/.bhatti ${merged}/.bhatti-boot`,
      `mount --bind ${work}/pkg ${merged}/.bhatti`,
      `mount -o remount,bind,ro ${merged}/.bhatti`,
      `mount --bind ${work}/boot ${merged}/.bhatti-boot`,
      `mount -t proc proc ${merged}/proc`,
      `mount --rbind /dev ${merged}/dev`,
      `exec chroot ${merged} ${argv}`,
    ].join(" && ");
    sandbox = spawnInPrivateNamespaces(script, "ignore");
    client = loopbackAgentClient(control, forward, token);
    await client.waitReady({ timeoutMs: 20_000 });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await stopNamespaces(sandbox, "SIGTERM");
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("runs as lohar in /workspace with Debian's own tools, and a TTY works", async () => {
    const r = await client.exec(["bash", "-c", 'echo "$(id -un) $PWD $HOME"; . /etc/os-release; echo $ID']);
    expect(r.stdout.toString()).toBe("lohar /workspace /home/lohar\ndebian\n");
    expect(existsSync(join(work, "boot/config.json"))).toBe(false);
    const s = await client.openTtySession(["bash", "--norc"]);
    await s.write("tty; exit 2\r");
    let out = "";
    let exit: number | undefined;
    for await (const ev of s) {
      if (ev.type === "output") out += ev.data.toString();
      else exit = ev.exitCode;
    }
    expect(out).toContain("/dev/pts/");
    expect(exit).toBe(2);
  });
});

// gVisor with no network at all: the host cannot reach the agent's ports, so a probe started
// with `runsc exec` (the packaged Node) speaks the protocol from inside the sandbox.
describe.skipIf(!hasRunsc)("agent package under gVisor (runsc, --network=none)", () => {
  const id = `bt-agent-${process.pid}-${Date.now().toString(36)}`;
  let work: string;
  let runscRoot: string;
  let started = false;

  const runsc = (...args: string[]) =>
    execFileSync(RUNSC as string, ["--root", runscRoot, "--platform=ptrace", "--network=none", ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 60_000,
    });

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-gvisor-"));
    runscRoot = join(work, "state");
    buildPackage(join(work, "pkg"));
    const rootfs = join(work, "bundle/rootfs");
    makeBusyboxRootfs(rootfs);
    mkdirSync(join(work, "boot"));
    writeFileSync(
      join(work, "boot/config.json"),
      JSON.stringify({ version: 1, token: "tok", env: { FROM_CONFIG: "yes" } } satisfies AgentBootConfig),
    );
    writeFileSync(
      join(rootfs, "tmp/probe.mjs"),
      `import net from "node:net";
const frame = (t, p = "") => { const b = Buffer.from(p); const h = Buffer.alloc(5); h.writeUInt32BE(1 + b.length); h[4] = t; return Buffer.concat([h, b]); };
const s = net.connect(1024, "127.0.0.1", () => {
  s.write(frame(0x11, "tok"));
  s.write(frame(0x10, JSON.stringify({ argv: ["sh", "-c", "echo $(id -u):$(id -g):$FROM_CONFIG; ls /.bhatti-boot | wc -l"] })));
  s.end();
});
const parts = [];
s.on("data", (d) => parts.push(d));
s.on("end", () => {
  const buf = Buffer.concat(parts);
  const out = [];
  for (let o = 0; o + 5 <= buf.length; o += 4 + buf.readUInt32BE(o)) {
    const len = buf.readUInt32BE(o);
    out.push({ type: buf[o + 4], text: buf.subarray(o + 5, o + 4 + len).toString() });
  }
  console.log(JSON.stringify(out));
});
`,
    );
    const caps = [
      "CAP_CHOWN",
      "CAP_DAC_OVERRIDE",
      "CAP_FOWNER",
      "CAP_FSETID",
      "CAP_KILL",
      "CAP_SETGID",
      "CAP_SETUID",
    ];
    const spec = {
      ociVersion: "1.0.2",
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: agentLaunchArgv("/.bhatti", "/.bhatti-boot/config.json"),
        env: ["PATH=/bin"],
        cwd: "/",
        capabilities: { bounding: caps, effective: caps, permitted: caps },
      },
      root: { path: "rootfs", readonly: false },
      hostname: "bt",
      mounts: [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"] },
        {
          destination: "/dev/pts",
          type: "devpts",
          source: "devpts",
          options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        { destination: "/.bhatti", type: "bind", source: join(work, "pkg"), options: ["rbind", "ro"] },
        { destination: "/.bhatti-boot", type: "bind", source: join(work, "boot"), options: ["rbind", "rw"] },
      ],
      linux: {
        cgroupsPath: `/bhatti-test/${id}`,
        namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      },
    };
    writeFileSync(join(work, "bundle/config.json"), JSON.stringify(spec));
    started = true; // from here on, afterAll deletes the container whatever happens
    // The sandbox keeps the stdio it is given: a pipe would never reach EOF, so use a file.
    const log = openSync(join(work, "runsc.log"), "w");
    try {
      const result = spawnSync(
        RUNSC as string,
        [
          "--root",
          runscRoot,
          "--platform=ptrace",
          "--network=none",
          "run",
          "-detach",
          "-bundle",
          join(work, "bundle"),
          id,
        ],
        { stdio: ["ignore", log, log], timeout: 60_000 },
      );
      if (result.status !== 0)
        throw new Error(`runsc run failed: ${readFileSync(join(work, "runsc.log"), "utf8")}`);
    } finally {
      closeSync(log);
    }
  }, 120_000);

  afterAll(() => {
    if (started) {
      try {
        runsc("delete", "--force", id);
      } catch {
        // Already gone.
      }
    }
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("serves exec as uid 1000 with the boot env, and removes the boot config", async () => {
    const probe = [
      "/.bhatti/lib/ld-linux-x86-64.so.2",
      "--library-path",
      "/.bhatti/lib",
      "/.bhatti/node",
      "/tmp/probe.mjs",
    ];
    let frames: Array<{ type: number; text: string }> = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        frames = JSON.parse(runsc("exec", id, ...probe)) as typeof frames;
        if (frames.length > 0) break;
      } catch {
        // Agent not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const stdout = frames
      .filter((f) => f.type === 0x02)
      .map((f) => f.text)
      .join("");
    expect(stdout).toBe("1000:1000:yes\n0\n");
    expect(frames.filter((f) => f.type !== 0x02 && f.type !== 0x08)).toEqual([
      { type: 0x05, text: "\u0000\u0000\u0000\u0000" },
    ]);
  }, 60_000);

  it("runs the Node it carries (the host's, >= 24) under gVisor", () => {
    const version = runsc(
      "exec",
      id,
      "/.bhatti/lib/ld-linux-x86-64.so.2",
      "--library-path",
      "/.bhatti/lib",
      "/.bhatti/node",
      "-p",
      "process.version",
    ).trim();
    expect(version).toBe(process.version);
    expect(Number(version.slice(1).split(".")[0])).toBeGreaterThanOrEqual(24);
  }, 60_000);

  it("stops on SIGTERM to PID 1", async () => {
    runsc("kill", id, "TERM");
    let state = "";
    for (let i = 0; i < 100 && !state.includes('"stopped"'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      state = runsc("state", id);
    }
    expect(state).toContain('"stopped"');
  });
});
