import { AgentConnectionError, AgentError } from "@bhatti/agent-client";
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
