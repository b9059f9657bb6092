// sudo where it matters: a gVisor sandbox (the product's runsc, ptrace) of the Debian image,
// whose own setuid sudo cannot become root there. The package's bin/sudo is mounted over
// /usr/bin/sudo and the boot config enables the agent's sudo socket, exactly as the vmm does.
// Commands start with `runsc exec --user 1000:1000`, i.e. as the sandbox user; the root file
// system is wrapped in a memory overlay so the image is never written.
import { execFileSync, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { agentLaunchArgv } from "@bhatti/agent-client";
import type { AgentBootConfig } from "@bhatti/agent-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../..");
const RUNSC = "/usr/local/lib/bhatti/runsc";
const IMAGE_ROOTFS = "/var/lib/bhatti/images/minimal/rootfs";
const canRun =
  process.getuid?.() === 0 &&
  existsSync(RUNSC) &&
  existsSync(join(IMAGE_ROOTFS, "usr/bin/sudo")) &&
  existsSync("/usr/bin/tini-static");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(!canRun)("sudo in a gVisor sandbox of the Debian image", () => {
  const id = `bt-sudo-${process.pid}-${Date.now().toString(36)}`;
  let work: string;
  let started = false;
  const global = () => [
    "--root",
    join(work, "state"),
    "--platform=ptrace",
    "--network=none",
    "--overlay2=root:memory",
  ];

  /** `runsc exec` as the sandbox user (uid 1000) in /workspace-less Debian: cwd /tmp. */
  const exec = (argv: string[], options: { input?: string; uid?: number } = {}): Run => {
    const uid = options.uid ?? 1000;
    const r = spawnSync(
      RUNSC,
      [
        ...global(),
        "exec",
        "--user",
        `${uid}:${uid}`,
        "--cwd",
        "/tmp",
        "--env",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "--env",
        "TERM=xterm",
        id,
        ...argv,
      ],
      { encoding: "utf8", input: options.input ?? "", timeout: 60_000 },
    );
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-sudo-gvisor-"));
    const pkg = join(work, "pkg");
    execFileSync(process.execPath, [join(repoRoot, "agent/scripts/build-package.mjs"), "--out", pkg], {
      stdio: "pipe",
    });
    mkdirSync(join(work, "boot"));
    mkdirSync(join(work, "bundle"));
    const config: AgentBootConfig = {
      version: 1,
      token: "sudo-test-token",
      user: { name: "lohar", uid: 1000, gid: 1000, home: "/home/lohar" },
      allow_root_exec: true,
      sudo: { socket: "/run/bhatti/sudo.sock" },
    };
    writeFileSync(join(work, "boot/config.json"), JSON.stringify(config));
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
        env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        cwd: "/",
        capabilities: { bounding: caps, effective: caps, permitted: caps },
      },
      root: { path: IMAGE_ROOTFS, readonly: false },
      hostname: "bt-sudo",
      mounts: [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"] },
        {
          destination: "/dev/pts",
          type: "devpts",
          source: "devpts",
          options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
        { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=755"] },
        { destination: "/.bhatti-boot", type: "bind", source: join(work, "boot"), options: ["rbind", "rw"] },
        { destination: "/.bhatti", type: "bind", source: pkg, options: ["rbind", "ro", "nosuid", "nodev"] },
        {
          destination: "/usr/bin/sudo",
          type: "bind",
          source: join(pkg, "bin/sudo"),
          options: ["rbind", "ro"],
        },
      ],
      linux: {
        cgroupsPath: `/bhatti-test/${id}`,
        namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      },
    };
    writeFileSync(join(work, "bundle/config.json"), JSON.stringify(spec));
    started = true; // from here on, afterAll deletes the container whatever happens
    const log = openSync(join(work, "runsc.log"), "w");
    try {
      const r = spawnSync(RUNSC, [...global(), "run", "-detach", "-bundle", join(work, "bundle"), id], {
        stdio: ["ignore", log, log],
        timeout: 60_000,
      });
      if (r.status !== 0)
        throw new Error(`runsc run failed: ${readFileSync(join(work, "runsc.log"), "utf8")}`);
    } finally {
      closeSync(log);
    }
    for (let i = 0; i < 100; i++) {
      if (exec(["test", "-S", "/run/bhatti/sudo.sock"]).code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("the agent's sudo socket never appeared");
  }, 120_000);

  afterAll(() => {
    if (started)
      spawnSync(RUNSC, [...global(), "delete", "--force", id], { stdio: "ignore", timeout: 60_000 });
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("runs as root for uid 1000: id, a root-owned /etc file, a pipe, exit codes", () => {
    expect(exec(["id", "-u"]).stdout).toBe("1000\n");
    expect(exec(["sudo", "-n", "id", "-u"])).toMatchObject({ code: 0, stdout: "0\n", stderr: "" });
    expect(exec(["sudo", "sh", "-c", "echo ok > /etc/bhatti-sudo-test"]).code).toBe(0);
    expect(exec(["stat", "-c", "%u:%g %s", "/etc/bhatti-sudo-test"]).stdout).toBe("0:0 3\n");
    expect(
      exec(["sh", "-c", "echo x | sudo tee /etc/bhatti-tee >/dev/null && cat /etc/bhatti-tee"]).stdout,
    ).toBe("x\n");
    expect(exec(["sh", "-c", "printf 'abc' | sudo cat"]).stdout).toBe("abc");
    expect(exec(["sudo", "sh", "-c", "exit 7"]).code).toBe(7);
    const other = exec(["sudo", "-u", "nobody", "true"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('running commands as "nobody" is not supported');
  });

  it("gives `sudo tty` a terminal of its own under script(1), and `sudo -i` root's home", () => {
    const r = exec(["script", "-qec", "sudo tty; sudo -i sh -c 'echo $HOME $(id -u)'", "/dev/null"]);
    expect(r.code).toBe(0);
    // Byte for byte what root's terminal wrote: no second "\r" added on the way.
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\n\/root 0\r\n$/);
    // And the caller's terminal is given back as it was (cooked, echo, output processing).
    const modes = exec([
      "script",
      "-qec",
      "sudo true; stty -a | tr ' ' '\\n' | grep -xE -- '-?(opost|icanon|echo)'",
      "/dev/null",
    ]);
    expect(modes.stdout.split(/\r?\n/).filter(Boolean).sort()).toEqual(["echo", "icanon", "opost"]);
  });
});
