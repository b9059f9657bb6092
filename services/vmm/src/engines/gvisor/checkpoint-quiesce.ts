import { dialAgent } from "@bhatti/agent-client";
import { FrameType } from "@bhatti/agent-protocol";
import type { Logger } from "@bhatti/runtime";
import type { GuestDialer } from "../../adapters/guest-dialer.js";
import type { Runsc } from "../../adapters/runsc.js";

/**
 * Brings a running sandbox to the state a checkpoint needs: paused by runsc, with no TCP
 * connection from outside that a guest process holds open. Returns with the container
 * paused; the caller checkpoints it (a restore starts it running) or resumes it.
 *
 * Why: with `--net-disconnect-ok`, runsc resets every connected TCP endpoint *during* the
 * save (the endpoint's `beforeSave`). The reset wakes the endpoint's waiters while the state
 * is being written, so the epoll instance of the process holding the socket can be saved
 * inconsistent (gVisor PR #14147, fixed upstream in 2026-08; the Debian build used here is
 * 20240729). After the restore that epoll reports the socket forever, even once it is removed
 * and closed: the agent's libuv loop spins on it at full CPU and never accepts again, and the
 * restore ends with "agent not ready after 30000 ms". Seen with the gateway's pooled spare
 * connections (authenticated, idle) open at checkpoint time, e.g. `bhatti serve` stopped
 * with `shutdown_policy: snapshot` right after an exec. Loopback connections are saved intact
 * (that link can be saved), so only connections from outside the sandbox matter.
 *
 * How, so that no reset is left for the save to do:
 * 1. Reset every host-side connection to the sandbox; one request on a fresh connection then
 *    proves the agent's loop has handled them (and any earlier close, e.g. a pool drained
 *    while the sandbox was frozen): they reached its stack first and it handles ready sockets
 *    in order. That connection is half-closed by us first, so the agent closes its socket
 *    right after its FIN, without waiting for us.
 * 2. `runsc pause`: guest processes stop, so nothing can accept a new connection any more (a
 *    client that reconnects, e.g. an exec retried on a fresh connection, stays in the listen
 *    queue, where no process holds it). The network stack keeps running.
 * 3. Reset again whatever connected between 1 and 2, and wait until the stack has handled
 *    those resets (a TCP handshake answered after them), so they are not left for the save.
 * Connections from elsewhere (other sandboxes, the internet) cannot be reset from here.
 */
export async function quiesceForCheckpoint(options: {
  id: string;
  dialer: GuestDialer;
  runsc: Runsc;
  host: string;
  controlPort: number;
  /** The agent's token; undefined when the guest runs no agent (plain init). */
  agentToken: string | undefined;
  timeoutMs: number;
  log?: Logger | undefined;
}): Promise<void> {
  const { id, dialer, runsc, host, controlPort, agentToken, timeoutMs, log } = options;
  const bestEffort = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      // Not a reason to refuse the checkpoint; the restore may still be fine.
      log?.warn(`before the checkpoint: ${what} failed`, { sandbox: id, error: (e as Error).message });
    }
  };
  if (agentToken !== undefined) {
    await bestEffort("closing agent connections", async () => {
      await dialer.resetConnections(host, controlPort);
      await agentRoundTrip(dialer, host, controlPort, agentToken, timeoutMs);
    });
  }
  await runsc.pause(id);
  await bestEffort("resetting connections", () => dialer.resetConnections(host, controlPort));
}

/** ACTIVITY_REQ on a fresh, already half-closed connection; resolves at the agent's FIN. */
async function agentRoundTrip(
  dialer: GuestDialer,
  host: string,
  port: number,
  token: string,
  timeoutMs: number,
): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  const conn = await dialAgent(await dialer.endpoint(host, port), timeoutMs, signal);
  conn.bindSignal(signal);
  try {
    if (token !== "") conn.send(FrameType.AUTH, token);
    conn.send(FrameType.ACTIVITY_REQ);
    conn.endInput();
    await conn.expectJson(FrameType.ACTIVITY_RESP);
    const after = await conn.read();
    if (after !== null) throw conn.unexpected(after.type);
  } finally {
    conn.close();
  }
}
