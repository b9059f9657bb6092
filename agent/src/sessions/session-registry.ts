import { AgentLimits, type ActivityInfo, type SessionInfo } from "@bhatti/agent-protocol";
import type { ActivityClock } from "../activity.js";
import { Session } from "./session.js";
import type { SessionProcess } from "./session-process.js";

export class SessionLimitError extends Error {
  override readonly name = "SessionLimitError";
}

export interface SessionRegistryOptions {
  activity: ActivityClock;
  maxSessions?: number;
  scrollbackBytes?: number;
  exitedLingerMs?: number;
}

export interface NewSession {
  argv: string[];
  tty: boolean;
  maxIdleSec: number;
  /** Fixed id (the boot "init" session); otherwise s1, s2, … */
  id?: string;
  /** Exited sessions are forgotten at once instead of lingering (init). */
  noLinger?: boolean;
}

/** All sessions of this agent: at most 20, exited-but-lingering ones included. */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private counter = 0;
  private readonly maxSessions: number;
  private readonly scrollbackBytes: number;
  private readonly lingerMs: number;

  constructor(private readonly options: SessionRegistryOptions) {
    this.maxSessions = options.maxSessions ?? AgentLimits.maxSessions;
    this.scrollbackBytes = options.scrollbackBytes ?? AgentLimits.scrollbackBytes;
    this.lingerMs = options.exitedLingerMs ?? AgentLimits.exitedSessionLingerMs;
  }

  /** Throws SessionLimitError before anything is started when the registry is full. */
  reserve(): void {
    if (this.sessions.size >= this.maxSessions) throw new SessionLimitError("session limit exceeded");
  }

  add(proc: SessionProcess, spec: NewSession): Session {
    const id = spec.id ?? `s${++this.counter}`;
    const session = new Session(proc, {
      id,
      argv: spec.argv,
      tty: spec.tty,
      maxIdleSec: spec.maxIdleSec,
      scrollbackBytes: this.scrollbackBytes,
      lingerMs: spec.noLinger === true ? 0 : this.lingerMs,
      activity: this.options.activity,
      remove: (s) => {
        if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
      },
    });
    this.sessions.set(id, session);
    return session;
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  list(): SessionInfo[] {
    return [...this.sessions.values()].map((s) => s.info());
  }

  activity(lastActivityUnix: number): ActivityInfo {
    let active = 0;
    let attached = 0;
    for (const s of this.sessions.values()) {
      if (s.running) active++;
      if (s.attached) attached++;
    }
    return { last_activity_unix: lastActivityUnix, active_sessions: active, attached_sessions: attached };
  }

  disposeAll(): void {
    for (const s of [...this.sessions.values()]) s.dispose();
  }
}
