import { resolveCommandSpec } from "../exec/command-spec.js";
import type { AgentContext } from "../agent-context.js";
import { spawnPtyProcess } from "../sessions/session-process.js";

/** The boot (or claim) `init` script runs as the TTY session "init", as the sandbox user. */
export function startInitSession(ctx: AgentContext, script: string): void {
  try {
    const spec = resolveCommandSpec(ctx, { argv: ["sh", "-c", script] });
    const proc = spawnPtyProcess(spec, 24, 80);
    ctx.sessions.add(proc, { id: "init", argv: spec.argv, tty: true, maxIdleSec: 0, noLinger: true });
  } catch (err) {
    ctx.log.error("init script failed to start", { error: err as Error });
  }
}
