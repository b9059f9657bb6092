import { execFile, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A bare runsc container (no bhatti: no agent, no overlay, no cgroup, `--network=none`) built
 * from the busybox image's rootfs, for the engine floors of the seed table: what runsc itself
 * costs to pause, resume, checkpoint and restore on this machine.
 */
export interface BareRunsc {
  /** Starts container `id`; `holdBytes` of random data go into its tmpfs (so checkpoints have that size). */
  run(id: string, holdBytes: number): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Checkpoints into a fresh image dir (the container exits) and returns the dir. */
  checkpoint(id: string): Promise<string>;
  restore(id: string, imageDir: string): Promise<void>;
  /** `runsc exec id true`, to check a restored container runs. */
  execTrue(id: string): Promise<void>;
  delete(id: string): Promise<void>;
  dispose(): Promise<void>;
}

export function createBareRunsc(runscPath: string, rootfs: string, platform: string): BareRunsc {
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-bare-"));
  const flags = [`--root=${join(dir, "root")}`, `--platform=${platform}`, "--network=none"];
  const ids = new Set<string>();
  let images = 0;
  const runsc = (args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile(runscPath, [...flags, ...args], { timeout: 120_000 }, (e, stdout, stderr) =>
        e === null ? resolve(stdout) : reject(new Error(`runsc ${args[0]}: ${e.message} ${stderr}`)),
      ),
    );
  // run/restore leave a sandbox that inherits runsc's stdio: it goes to a log file, never a pipe
  // (a pipe would stay open as long as the container lives).
  const launch = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const log = openSync(join(dir, "runsc.log"), "a");
      const child = spawn(runscPath, [...flags, ...args], { stdio: ["ignore", log, log] });
      closeSync(log);
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      child.once("error", reject);
      child.once("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else
          reject(
            new Error(
              `runsc ${args[0]} exited ${code}: ${readFileSync(join(dir, "runsc.log"), "utf8").slice(-500)}`,
            ),
          );
      });
    });
  const bundle = (holdBytes: number) => {
    const b = join(dir, `bundle-${holdBytes}`);
    mkdirSync(b, { recursive: true });
    const script = `head -c ${holdBytes} /dev/urandom > /tmp/blob; touch /tmp/ready; exec sleep 1000000`;
    writeFileSync(
      join(b, "config.json"),
      JSON.stringify({
        ociVersion: "1.0.0",
        process: { user: { uid: 0, gid: 0 }, args: ["/bin/sh", "-c", script], env: ["PATH=/bin"], cwd: "/" },
        root: { path: rootfs, readonly: true },
        hostname: "bare",
        mounts: [
          { destination: "/proc", type: "proc", source: "proc" },
          { destination: "/tmp", type: "tmpfs", source: "tmpfs" },
        ],
        linux: {
          namespaces: [
            { type: "pid" },
            { type: "ipc" },
            { type: "uts" },
            { type: "mount" },
            { type: "network" },
          ],
        },
      }),
    );
    return b;
  };
  const bundles = new Map<string, string>();
  return {
    async run(id, holdBytes) {
      const b = bundle(holdBytes);
      bundles.set(id, b);
      ids.add(id);
      await launch(["run", "--detach", `--bundle=${b}`, id]);
      // Wait until the tmpfs holds the data.
      const deadline = Date.now() + 60_000;
      while (
        (
          await runsc(["exec", id, "/bin/sh", "-c", "test -f /tmp/ready && echo ready"]).catch(() => "")
        ).trim() !== "ready"
      ) {
        if (Date.now() > deadline) throw new Error("bare container never finished writing its blob");
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    pause: async (id) => void (await runsc(["pause", id])),
    resume: async (id) => void (await runsc(["resume", id])),
    async checkpoint(id) {
      const img = join(dir, `image-${images++}`);
      mkdirSync(img);
      await runsc(["checkpoint", `--image-path=${img}`, "--compression=none", id]);
      return img;
    },
    async restore(id, imageDir) {
      const b = bundles.get(id);
      if (b === undefined) throw new Error(`no bundle for ${id}`);
      await launch(["restore", "--detach", `--image-path=${imageDir}`, `--bundle=${b}`, id]);
    },
    execTrue: async (id) => void (await runsc(["exec", id, "/bin/true"])),
    delete: async (id) => void (await runsc(["delete", "--force", id]).catch(() => "")),
    async dispose() {
      for (const id of ids) await runsc(["delete", "--force", id]).catch(() => "");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
