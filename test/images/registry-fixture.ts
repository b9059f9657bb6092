import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A hermetic Debian `docker-registry` on 127.0.0.1:<free port> with its own config and storage in
 * a bhatti-test-registry-* dir; optionally with htpasswd auth (bcrypt from python3's crypt, the
 * only hash the registry accepts). Plain HTTP: loopback registries need no TLS.
 */
export interface TestRegistry {
  /** host:port */
  readonly host: string;
  readonly dir: string;
  /** Where the registry keeps blobs (to tamper with one). */
  readonly storage: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function startRegistry(
  options: {
    auth?: { user: string; password: string };
    /** Run inside this network namespace (the product harness's stand-in host). */
    netnsPath?: string;
  } = {},
): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-registry-"));
  const storage = join(dir, "storage");
  mkdirSync(storage);
  const port = await freePort();
  let auth = "";
  if (options.auth) {
    const hash = execFileSync(
      "python3",
      [
        "-W",
        "ignore",
        "-c",
        "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        options.auth.password,
      ],
      { encoding: "utf8" },
    ).trim();
    writeFileSync(join(dir, "htpasswd"), `${options.auth.user}:${hash}\n`);
    auth = `auth:\n  htpasswd:\n    realm: bhatti-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const ns = options.netnsPath;
  const child: ChildProcess = ns
    ? spawn("nsenter", [`--net=${ns}`, "--", "docker-registry", "serve", join(dir, "config.yml")], {
        stdio: ["ignore", "ignore", "pipe"],
      })
    : spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      if (ns) {
        // Inside the namespace: only an anonymous registry is probed (wget fails on a 401).
        execFileSync("nsenter", [
          `--net=${ns}`,
          "--",
          "busybox",
          "wget",
          "-q",
          "-O",
          "/dev/null",
          `http://127.0.0.1:${port}/v2/`,
        ]);
        return true;
      }
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      return r.status === 200 || r.status === 401;
    }, "the test registry");
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: `127.0.0.1:${port}`, dir, storage, stop };
}
