/** Command-line flags of the agent. The standalone flags are a stable external contract. */
export interface AgentArgs {
  /** Sandbox mode: the boot config file. */
  config?: string;
  /** Standalone mode: control and forward listen addresses, "host:port". */
  listen?: string;
  forwardListen?: string;
  tokenFile?: string;
  user?: string;
  allowRoot: boolean;
  /** Standalone mode: serve the sudo channel on this Unix socket (needs root). */
  sudoSocket?: string;
  workdir?: string;
  authTimeoutMs?: number;
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export const USAGE = `usage:
  agent --config FILE                      sandbox mode (started by the engine behind tini)
  agent --listen HOST:PORT --forward-listen HOST:PORT [--token-file FILE] [--user NAME]
        [--allow-root] [--sudo-socket PATH] [--workdir DIR] [--auth-timeout-ms N]
                                           standalone mode (an ordinary process)`;

const valueFlags: Record<string, keyof AgentArgs> = {
  "--config": "config",
  "--listen": "listen",
  "--forward-listen": "forwardListen",
  "--token-file": "tokenFile",
  "--user": "user",
  "--workdir": "workdir",
  "--sudo-socket": "sudoSocket",
  "--auth-timeout-ms": "authTimeoutMs",
};

export function parseAgentArgs(argv: readonly string[]): AgentArgs {
  const args: AgentArgs = { allowRoot: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (name === "--allow-root") {
      args.allowRoot = true;
      continue;
    }
    const key = valueFlags[name];
    if (key === undefined) throw new UsageError(`unknown flag ${arg}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === "") throw new UsageError(`${name} needs a value`);
    if (key === "authTimeoutMs") {
      const ms = Number(value);
      if (!Number.isInteger(ms) || ms <= 0) throw new UsageError(`${name} must be a positive integer`);
      args.authTimeoutMs = ms;
    } else {
      (args as unknown as Record<string, string>)[key] = value;
    }
  }
  if (args.config === undefined && (args.listen === undefined || args.forwardListen === undefined)) {
    throw new UsageError("either --config, or both --listen and --forward-listen, are required");
  }
  return args;
}

/** "host:port" (IPv6 hosts in brackets) → parts; port 0 picks a free port. */
export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`invalid address ${JSON.stringify(value)} (want host:port)`);
  }
  return { host: match[1] ?? (match[2] || "0.0.0.0"), port };
}
