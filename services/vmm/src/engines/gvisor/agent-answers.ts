import { setTimeout as sleep } from "node:timers/promises";
import {
  type AgentClient,
  AgentConnectionError,
  AgentError,
  WAIT_READY_GAP_MS,
  waitReadyAttemptTimeoutMs,
} from "@bhatti/agent-client";
import { ErrorText } from "@bhatti/agent-protocol";

/**
 * Resolves once the agent answers an ACTIVITY_REQ on a fresh connection: its loop accepts and
 * authenticates again. The readiness wait of a restore: the restored agent was running commands
 * when it was checkpointed, so what is left to prove is that it is reachable through the restored
 * network stack. AgentClient.waitReady's probe is an exec, i.e. a fork of the Node agent, which
 * gVisor makes cost tens of milliseconds (docs/performance.md); this one forks nothing.
 * Same attempt timeouts and gap as waitReady (short first attempts beat ARP's retransmit timer).
 */
export async function waitAgentAnswers(
  client: AgentClient,
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<void> {
  const { timeoutMs, signal } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw signal.reason;
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const attemptSignal = AbortSignal.any([
      signal,
      AbortSignal.timeout(Math.min(waitReadyAttemptTimeoutMs(attempt), remaining)),
    ]);
    try {
      await client.activity({ signal: attemptSignal });
      return;
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      // A wrong token never becomes right: fail fast.
      if (e instanceof AgentError && e.agentMessage === ErrorText.authRequired) throw e;
      lastError = e;
    }
    client.drainPool();
    await sleep(WAIT_READY_GAP_MS);
  }
  throw new AgentConnectionError(
    `agent not ready after ${timeoutMs} ms: ${(lastError as Error | undefined)?.message ?? "no attempt"}`,
    { cause: lastError, code: "ETIMEDOUT" },
  );
}
