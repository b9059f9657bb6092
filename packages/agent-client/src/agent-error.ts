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
  override readonly name = "AgentConnectionError";
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
