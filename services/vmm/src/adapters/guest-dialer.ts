import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEndpoint as AgentClientEndpoint } from "@bhatti/agent-client";

/**
 * Turns a sandbox address and port into an endpoint the agent client can dial. In the product
 * the sandboxes' bridges live in the vmm's network namespace, so that is plain TCP. When they
 * live in another namespace (tests use a stand-in host netns), connections go through a relay
 * process started in that namespace with `nsenter --net` (Node cannot setns itself): it serves
 * one Unix socket per target and pipes each connection to the target's TCP port.
 */
export interface GuestDialer {
  endpoint(host: string, port: number): Promise<AgentClientEndpoint>;
  close(): Promise<void>;
}

export function createDirectDialer(): GuestDialer {
  return {
    endpoint: async (host, port) => ({ host, port }),
    close: async () => {},
  };
}

// Control protocol on <dir>/relay.sock: "host port\n" -> "OK <socket path>\n". Each target
// socket relays connections to host:port inside the relay's netns (half-close preserved).
const RELAY_SCRIPT = `
const net = require("node:net");
const path = require("node:path");
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
      const [host, port] = buf.slice(0, nl).split(" ");
      buf = buf.slice(nl + 1);
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
  return {
    async endpoint(host, port) {
      const key = `${host} ${port}`;
      let path = known.get(key);
      if (path === undefined) {
        path = await new Promise<string>((resolve, reject) => {
          const c = connect(join(dir, "relay.sock"));
          let buf = "";
          c.once("error", reject);
          c.on("data", (d) => {
            buf += d.toString();
            const nl = buf.indexOf("\n");
            if (nl < 0) return;
            c.destroy();
            const line = buf.slice(0, nl);
            if (line.startsWith("OK ")) resolve(line.slice(3));
            else reject(new Error(`netns relay: ${line}`));
          });
          c.write(`${key}\n`);
        });
        known.set(key, path);
      }
      return { path };
    },
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
