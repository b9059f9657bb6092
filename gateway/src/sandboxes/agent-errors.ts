import {
  AgentConnectionError,
  AgentError,
  AgentProtocolError,
  AgentTimeoutError,
} from "@bhatti/agent-client";
import { ErrorText } from "@bhatti/agent-protocol";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * An agent failure as a ConnectError with a status the caller can act on. Agent messages are
 * about the caller's command or path (not server internals), so they are passed through.
 */
export function agentErrorToConnect(e: unknown): unknown {
  if (e instanceof AgentError) {
    const m = e.agentMessage;
    if (m === ErrorText.sessionNotFound || /no such file or directory|not found/i.test(m)) {
      return new ConnectError(m, Code.NotFound, undefined, undefined, e);
    }
    if (m === ErrorText.sessionAttached)
      return new ConnectError(m, Code.FailedPrecondition, undefined, undefined, e);
    if (m === ErrorText.sessionLimit || m === ErrorText.connectionLimit) {
      return new ConnectError(m, Code.ResourceExhausted, undefined, undefined, e);
    }
    if (/permission denied/i.test(m))
      return new ConnectError(m, Code.PermissionDenied, undefined, undefined, e);
    return new ConnectError(m, Code.InvalidArgument, undefined, undefined, e);
  }
  // Sandbox root can stop or replace the agent: its silence and its garbage are the sandbox's
  // failure (504, 502), never the gateway's (500).
  if (e instanceof AgentTimeoutError) {
    return new ConnectError(
      `sandbox agent did not answer in time`,
      Code.DeadlineExceeded,
      undefined,
      undefined,
      e,
    );
  }
  if (e instanceof AgentProtocolError) {
    // DataLoss is the gateway's "bad gateway" (502): the reply from upstream was corrupt.
    return new ConnectError(
      "bad gateway: the sandbox's agent sent an invalid reply",
      Code.DataLoss,
      undefined,
      undefined,
      e,
    );
  }
  // The caller went away (its request's signal aborted): nobody reads the answer.
  if (e instanceof Error && e.name === "AbortError") {
    return new ConnectError("request canceled", Code.Canceled, undefined, undefined, e);
  }
  if (e instanceof Error && e.name === "TimeoutError") {
    return new ConnectError("request deadline exceeded", Code.DeadlineExceeded, undefined, undefined, e);
  }
  if (e instanceof AgentConnectionError) {
    return new ConnectError(
      `sandbox agent unreachable: ${e.message}`,
      Code.Unavailable,
      undefined,
      undefined,
      e,
    );
  }
  return e;
}

/** Runs an agent call, translating its failures. */
export async function translatingAgentErrors<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    throw agentErrorToConnect(e);
  }
}
