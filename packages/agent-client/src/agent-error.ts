/** The agent answered with an ERROR frame. `agentMessage` is its text, e.g. "session not found". */
export class AgentError extends Error {
  override readonly name = "AgentError";
  constructor(readonly agentMessage: string) {
    super(`agent error: ${agentMessage}`);
  }
}

/**
 * The connection to the agent failed or broke the protocol: refused, reset, closed before
 * the operation finished, or an unexpected frame. `code` is the errno code when there is one.
 */
export class AgentConnectionError extends Error {
  override readonly name: string = "AgentConnectionError";
  readonly code: string | undefined;
  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? (options.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException("This operation was aborted", "AbortError");
}

/**
 * The agent did not answer within the operation's deadline (a stopped, traced or wedged
 * agent). Not an AgentConnectionError: it is never retried, since the agent was reached.
 */
export class AgentTimeoutError extends Error {
  override readonly name = "AgentTimeoutError";
}

/**
 * The agent answered something that breaks the protocol: invalid JSON, a reply of the wrong
 * shape or type, an oversize frame. The sandbox's agent is misbehaving (it may be hostile).
 */
export class AgentProtocolError extends AgentConnectionError {
  override readonly name = "AgentProtocolError";
}
