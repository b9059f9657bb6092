// JSON payloads of the protocol. Field names and optionality follow bhatti v1 exactly
// (snake_case, optional fields omitted rather than null); additions are marked "bhatti v2".

/** EXEC_REQ. With `session_id` set it is an attach and `argv` is ignored. */
export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  tty?: boolean;
  /** TTY only; default 24. */
  rows?: number;
  /** TTY only; default 80. */
  cols?: number;
  /** Working directory; default the sandbox workdir (`/workspace`, else the user's home). */
  cwd?: string;
  session_id?: string;
  /** Kill a detached session after this many idle seconds; 0 or absent = never. */
  max_idle_sec?: number;
  /** Attach only if no client is attached ("session is attached" otherwise). */
  if_detached?: boolean;
  /** Detached exec: setsid, output to `output_file`, reply with the pid. */
  detach?: boolean;
  output_file?: string;
  /** A non-TTY session that keeps scrollback and survives disconnects. */
  session?: boolean;
  /** Flush file systems before EXIT (one-shot exec). */
  sync?: boolean;
  /** bhatti v2: run as root instead of the sandbox user, if the sandbox allows it. */
  root?: boolean;
  /**
   * bhatti v2, one-shot exec: the command's stdin is /dev/null (as `docker exec` without -i),
   * not a stream from the host; STDIN frames are dropped. Older agents ignore it (stdin is then
   * a stream the host ends at once).
   */
  stdin_null?: boolean;
}

/** EXEC_LIST_RESP entries and SESSION_INFO. */
export interface SessionInfo {
  session_id: string;
  /** The argv joined with spaces. */
  argv: string;
  tty: boolean;
  running: boolean;
  exit_code?: number;
  attached: boolean;
  /** Unix seconds. */
  created_at: number;
}

/** ACTIVITY_RESP. */
export interface ActivityInfo {
  last_activity_unix: number;
  /** Sessions whose process is still running. */
  active_sessions: number;
  /** Sessions with a client connected. */
  attached_sessions: number;
}

/** FILE_STAT_RESP and FILE_LS_RESP entries. */
export interface FileInfo {
  name: string;
  size: number;
  /** Permission bits as a 4-digit octal string, e.g. "0644". */
  mode: string;
  is_dir: boolean;
  /** Unix seconds. */
  mtime: number;
}

/** FILE_READ_REQ. Any of offset/limit/max_bytes > 0 selects truncated (line) mode. */
export interface FileReadRequest {
  path: string;
  /** 1-based first line. */
  offset?: number;
  /** Maximum number of lines. */
  limit?: number;
  /** Byte budget; may cut a line. */
  max_bytes?: number;
}

/** FILE_READ_RESP: sent before the content; `size` is the whole file's size. */
export interface FileReadResponse {
  size: number;
  mode: string;
}

/** FILE_WRITE_REQ: followed by exactly `size` bytes in STDIN frames. */
export interface FileWriteRequest {
  path: string;
  /** Octal string; "" or "0" means 0644. */
  mode?: string;
  size: number;
}

export interface StatusResponse {
  status: "ok";
}

export interface FilePathRequest {
  path: string;
}

export interface ExecKillRequest {
  session_id: string;
}

export interface ForwardRequest {
  port: number;
}

export type ForwardResponse = { status: "ok" } | { status: "error"; message: string };

/** The STDOUT payload answering a detached exec. */
export interface DetachedExecResult {
  pid: number;
  output_file: string;
}
