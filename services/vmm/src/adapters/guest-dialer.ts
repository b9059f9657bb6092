import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEndpoint as AgentClientEndpoint } from "@bhatti/agent-client";
import { runCommand } from "./command.js";

/**
 * Turns a sandbox address and port into an endpoint the agent client can dial. In the product
 * the sandboxes' bridges live in the vmm's network namespace, so that is plain TCP. When they
 * live in another namespace (tests use a stand-in host netns), connections go through a relay
 * process started in that namespace with `nsenter --net` (Node cannot setns itself): it serves
 * one Unix socket per target and pipes each connection to the target's TCP port.
 */
export interface GuestDialer {
  endpoint(host: string, port: number): Promise<AgentClientEndpoint>;
  /**
   * Resets (RST) every TCP connection that this side of the network has open to `host` (the
   * gateway's pooled spares, running execs, proxied streams; the kernel's socket-destroy,
   * `ss -K`, so other processes' connections in this netns go too), then returns once the
   * guest's network stack has handled those resets: a TCP handshake to `syncPort`, accepted
   * or refused, comes back after them (one stack, in order).
   */
  resetConnections(host: string, syncPort: number): Promise<void>;
  close(): Promise<void>;
}

/** `ss -K` of every TCP socket to `host`; TIME-WAIT sockets cannot be destroyed and need not be. */
const resetArgs = (host: string) => ["-K", "-t", "-n", "dst", host];

const SYNC_TIMEOUT_MS = 3_000;

/** Resolves when a TCP handshake to host:port completes or is refused (the peer answered). */
function handshake(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${SYNC_TIMEOUT_MS} ms`));
    }, SYNC_TIMEOUT_MS);
    const done = (error?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (error) reject(error);
      else resolve();
    };
    s.once("connect", () => done());
    s.once("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED" ? undefined : e));
  });
}

export function createDirectDialer(): GuestDialer {
  return {
    endpoint: async (host, port) => ({ host, port }),
    async resetConnections(host, syncPort) {
      await runCommand("ss", resetArgs(host), { timeoutMs: 10_000 });
      await handshake(host, syncPort);
    },
    close: async () => {},
  };
}

// Control protocol on <dir>/relay.sock: "host port\n" -> "OK <socket path>\n". Each target
// socket relays connections to host:port inside the relay's netns (half-close preserved).
// "reset host port\n" -> "OK\n": resetConnections inside the relay's netns.
const RELAY_SCRIPT = `
const net = require("node:net");
const path = require("node:path");
const { execFile } = require("node:child_process");
function reset(host, port) {
  return new Promise((resolve, reject) => {
    execFile("ss", ${JSON.stringify(resetArgs("HOST"))}.map((a) => a === "HOST" ? host : a), (e) => {
      if (e) return reject(e);
      const s = net.connect({ host, port: Number(port) });
      const timer = setTimeout(() => { s.destroy(); reject(new Error("no answer from " + host + ":" + port)); }, ${SYNC_TIMEOUT_MS});
      const done = (err) => { clearTimeout(timer); s.destroy(); err ? reject(err) : resolve(); };
      s.once("connect", () => done());
      s.once("error", (err) => done(err.code === "ECONNREFUSED" ? undefined : err));
    });
  });
}
const dir = process.argv[1];
const targets = new Map();
function target(host, port) {
  const key = host + "_" + port;
  if (targets.has(key)) return targets.get(key);
  const p = path.join(dir, key + ".sock");
  const ready = new Promise((resolve, reject) => {
    const srv = net.createServer({ allowHalfOpen: true }, (c) => {
      const t = net.connect({ host, port: Number(port), allowHalfOpen: true, noDelay: true });
      c.pipe(t); t.pipe(c);
      t.on("error", () => c.destroy());
      c.on("error", () => t.destroy());
      c.on("close", () => t.destroy());
      t.on("close", () => c.destroy());
    });
    srv.once("error", reject);
    srv.listen(p, () => resolve(p));
  });
  targets.set(key, ready);
  return ready;
}
const control = net.createServer((c) => {
  let buf = "";
  c.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\\n")) >= 0) {
      const words = buf.slice(0, nl).split(" ");
      buf = buf.slice(nl + 1);
      if (words[0] === "reset") {
        reset(words[1], words[2]).then(() => c.write("OK\\n"), (e) => c.write("ERR " + e.message + "\\n"));
        continue;
      }
      const [host, port] = words;
      target(host, port).then((p) => c.write("OK " + p + "\\n"), (e) => c.write("ERR " + e.message + "\\n"));
    }
  });
  c.on("error", () => {});
});
control.listen(path.join(dir, "relay.sock"), () => process.stdout.write("ready\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

/** A dialer whose connections originate in the network namespace at `netnsPath`. */
export async function createNetnsDialer(netnsPath: string): Promise<GuestDialer> {
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-relay-"));
  const child: ChildProcess = spawn(
    "nsenter",
    [`--net=${netnsPath}`, "--", process.execPath, "-e", RELAY_SCRIPT, dir],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`netns relay exited ${code}`)));
    child.stdout?.once("data", () => resolve());
  });
  child.removeAllListeners("exit");
  const known = new Map<string, string>();
  /** One request on the relay's control socket; resolves with the text after "OK". */
  const ask = (line: string) =>
    new Promise<string>((resolve, reject) => {
      const c = connect(join(dir, "relay.sock"));
      let buf = "";
      c.once("error", reject);
      c.on("data", (d) => {
        buf += d.toString();
        const nl = buf.indexOf("\n");
        if (nl < 0) return;
        c.destroy();
        const reply = buf.slice(0, nl);
        if (reply === "OK" || reply.startsWith("OK ")) resolve(reply.slice(3));
        else reject(new Error(`netns relay: ${reply}`));
      });
      c.write(`${line}\n`);
    });
  return {
    async endpoint(host, port) {
      const key = `${host} ${port}`;
      let path = known.get(key);
      if (path === undefined) {
        path = await ask(key);
        known.set(key, path);
      }
      return { path };
    },
    resetConnections: async (host, syncPort) => void (await ask(`reset ${host} ${syncPort}`)),
    async close() {
      child.stdin?.end();
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        setTimeout(() => child.kill("SIGKILL"), 1000).unref();
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
