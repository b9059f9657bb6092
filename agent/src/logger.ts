/** One JSON object per line on stderr; the agent keeps no log files of its own. */
export interface AgentLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createAgentLogger(
  write: (line: string) => void = (l) => process.stderr.write(l),
): AgentLogger {
  const emit = (level: string, msg: string, fields?: Record<string, unknown>) => {
    const line: Record<string, unknown> = { ts: new Date().toISOString(), level, service: "agent", msg };
    if (fields !== undefined) {
      for (const [k, v] of Object.entries(fields)) line[k] = v instanceof Error ? v.message : v;
    }
    write(`${JSON.stringify(line)}\n`);
  };
  return {
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}
