import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";

/**
 * Runs this script again inside a stand-in host netns of its own, so that a bench's clients
 * reach the product (started in that netns by the harnesses) over plain TCP, as a client on a
 * real host does, instead of through the relay process the harness otherwise dials with (the
 * relay is one more process hop per request; the product has none). In the child, where
 * `BHATTI_TEST_HOST_NETNS` is set, it returns at once and createGvisorTestEnv adopts that netns.
 * In the parent it waits for the child, removes the netns and exits with the child's status.
 */
export async function runInsideHostNetns(): Promise<void> {
  if (process.env["BHATTI_TEST_HOST_NETNS"]) return;
  const name = `bt-hb${randomBytes(3).toString("hex")}`;
  execFileSync("ip", ["netns", "add", name]);
  let status = 1;
  try {
    const child = spawn(
      "nsenter",
      [`--net=/run/netns/${name}`, "--", process.execPath, ...process.execArgv, ...process.argv.slice(1)],
      { stdio: "inherit", env: { ...process.env, BHATTI_TEST_HOST_NETNS: name } },
    );
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    process.on("SIGINT", forward("SIGINT"));
    process.on("SIGTERM", forward("SIGTERM"));
    status = await new Promise<number>((resolve) =>
      child.once("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128 + 15))),
    );
  } finally {
    try {
      execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
  process.exit(status);
}
