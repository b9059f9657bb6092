/**
 * The JSON file the engine hands the agent in sandbox mode (`--config FILE`). The agent
 * applies it at start, then removes it (or makes it root-only) so the sandbox user cannot
 * read the token or secrets.
 */
export interface AgentBootConfig {
  /** Format version; this is 1. */
  version: 1;
  sandbox_id?: string;
  /** The agent token (32 hex chars); "" disables auth (tests only). */
  token: string;
  hostname?: string;
  /** Environment for every command (layered over the defaults, under the request's env). */
  env?: Record<string, string>;
  /** Decrypted secrets, exported as environment variables named after the key. */
  secrets?: Record<string, string>;
  /** Files written before the agent listens; owned by the sandbox user. */
  files?: AgentBootFile[];
  /** The unprivileged user commands run as; default `{name:"user", uid:1000, gid:1000, home:"/home/user"}`. */
  user?: AgentBootUser;
  /** May an EXEC_REQ with `root: true` run as uid 0? Default false. */
  allow_root_exec?: boolean;
  /** Default working directory; default "/workspace" (the user's home when it does not exist). */
  workdir?: string;
  /** Listen addresses; default "0.0.0.0:1024" and "0.0.0.0:1025". */
  listen?: { control?: string; forward?: string };
  /** A shell command run once at boot as the TTY session "init". */
  init?: string;
  /**
   * The local privileged channel behind the sandbox's `sudo` (bhatti v2): when set, the agent
   * listens on this Unix socket (mode 0666) and runs exec requests from any local process as
   * root, without AUTH. Absent = no such channel.
   */
  sudo?: AgentBootSudo;
  /**
   * Booted as a per-image template (docs/templates.md): the agent accepts one CLAIM_REQ that
   * replaces its token and applies the user's hostname, env, secrets and files.
   */
  template?: boolean;
}

export interface AgentBootSudo {
  /** Absolute path of the Unix socket, e.g. `/run/bhatti/sudo.sock`; its parent is created 0755. */
  socket: string;
}

export interface AgentBootFile {
  path: string;
  /** File content, base64. */
  content: string;
  /** Octal mode string, default "0644". */
  mode?: string;
}

export interface AgentBootUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export const DEFAULT_SANDBOX_USER: AgentBootUser = { name: "user", uid: 1000, gid: 1000, home: "/home/user" };
export const DEFAULT_WORKDIR = "/workspace";
/** Where the agent's sudo channel listens unless the boot config says otherwise; the shim's default. */
export const DEFAULT_SUDO_SOCKET = "/run/bhatti/sudo.sock";
