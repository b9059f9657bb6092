// ERROR frame texts. Hosts (and v1 tooling) match on some of them, so they are part of the
// protocol and must not change.

export const ErrorText = {
  authRequired: "auth required",
  connectionLimit: "connection limit exceeded",
  emptyArgv: "empty argv",
  sessionNotFound: "session not found",
  sessionAttached: "session is attached",
  sessionLimit: "session limit exceeded",
  negativeSize: "file size must be >= 0",
  badKillRequest: "bad kill request",
} as const;

export const errorTextFor = {
  badExecRequest: (detail: string) => `bad exec request: ${detail}`,
  badRequest: (detail: string) => `bad request: ${detail}`,
  isDirectory: (path: string) => `${path} is a directory`,
  notRegularFile: (path: string) => `${path} is not a regular file`,
  notDirectory: (path: string) => `${path} is not a directory`,
  fileTooLarge: (size: number, max: number) => `file too large: ${size} bytes (max ${max})`,
  connectionLost: (written: number, size: number) => `connection lost after ${written}/${size} bytes`,
  expectedForward: (typeHex: string) => `expected FWD_REQ, got ${typeHex}`,
  start: (detail: string) => `start: ${detail}`,
  openOutputFile: (detail: string) => `open output file: ${detail}`,
  /** bhatti v2: an EXEC_REQ form the sudo socket does not serve (attach, detach, piped session). */
  sudoUnsupported: (what: string) => `${what} is not available on the sudo socket`,
  listTruncated: (shown: number, total: number) => `... truncated at ${shown} entries (${total} total)`,
};

/** Limits shared by agent and host. */
export const AgentLimits = {
  maxControlConnections: 50,
  maxSessions: 20,
  scrollbackBytes: 64 * 1024,
  maxWriteBytes: 100 * 1024 * 1024,
  maxListEntries: 10_000,
  /** Longest line truncated reads accept. */
  maxLineBytes: 256 * 1024,
  authTimeoutMs: 5_000,
  /** How long an exited, detached session stays attachable. */
  exitedSessionLingerMs: 30_000,
} as const;
