/**
 * Frame type bytes of the host↔guest protocol. The values are fixed by bhatti v1; new
 * features get new codes, never reuse old ones. Host readers skip types they do not know.
 */
export const FrameType = {
  STDIN: 0x01,
  STDOUT: 0x02,
  STDERR: 0x03,
  RESIZE: 0x04,
  EXIT: 0x05,
  ERROR: 0x06,
  KILL: 0x07,
  /**
   * bhatti v2, G→H, empty: sent every second during a one-shot exec after the host closed
   * its side, so a vanished host is noticed (the write fails) and the command killed.
   * Hosts skip it like any unknown type.
   */
  KEEPALIVE: 0x08,
  /**
   * bhatti v2, H→G: deliver a signal to the running command's process group. Payload: the
   * signal's name in ASCII ("SIGINT"); unknown names are ignored. Old agents skip it.
   */
  SIGNAL: 0x09,
  /**
   * bhatti v2, H→G, empty: the one-shot exec's stdin ends, on a connection kept for reuse (see
   * REUSE_REQ), where a half-close would end the connection too. KILL, SIGNAL and STDIN must
   * come before it: the agent reads nothing more of that exec.
   */
  STDIN_EOF: 0x0a,
  EXEC_REQ: 0x10,
  AUTH: 0x11,
  CONFIG_REQ: 0x12,
  CONFIG_RESP: 0x13,
  /**
   * bhatti v2, H→G, empty, right after AUTH: keep this connection open between operations. After
   * a one-shot exec, a file read, write, stat or listing, or an activity request that completed
   * (its last frame sent, no ERROR), the agent reads the next request on the same connection;
   * an ERROR, any other operation, or a half-close from the host still ends it. v1 had one
   * operation per connection; an agent without this answers ERROR "unexpected frame 0x14".
   */
  REUSE_REQ: 0x14,
  /** bhatti v2, G→H, empty: REUSE_REQ accepted. */
  REUSE_RESP: 0x15,
  FWD_REQ: 0x20,
  FWD_RESP: 0x21,
  EXEC_LIST_REQ: 0x30,
  EXEC_LIST_RESP: 0x31,
  EXEC_KILL: 0x32,
  SESSION_INFO: 0x33,
  ACTIVITY_REQ: 0x40,
  ACTIVITY_RESP: 0x41,
  FILE_READ_REQ: 0x50,
  FILE_READ_RESP: 0x51,
  FILE_WRITE_REQ: 0x52,
  FILE_WRITE_RESP: 0x53,
  FILE_STAT_REQ: 0x54,
  FILE_STAT_RESP: 0x55,
  FILE_LS_REQ: 0x56,
  FILE_LS_RESP: 0x57,
  SYSTEMCTL_REQ: 0x60,
  SYSTEMCTL_RESP: 0x61,
  /**
   * bhatti v2, H→G, JSON ClaimRequest: hands a template sandbox (restored from a per-image
   * checkpoint) to its user: new token, hostname, env, files. Accepted once, only by an agent
   * booted as a template, on a connection authenticated with the template's token.
   */
  CLAIM_REQ: 0x70,
  /** bhatti v2, G→H, JSON `{status: "ok"}`: the claim is applied; the old token is refused from now on. */
  CLAIM_RESP: 0x71,
} as const;

export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

const namesByCode = new Map<number, FrameTypeName>(
  Object.entries(FrameType).map(([name, code]) => [code, name as FrameTypeName]),
);

/** The symbolic name of a type byte, or `0xNN` for one this version does not know. */
export function frameTypeName(code: number): string {
  return namesByCode.get(code) ?? formatTypeByte(code);
}

/** Formats a type byte the way error texts show it: `0x0a`. */
export function formatTypeByte(code: number): string {
  return `0x${code.toString(16).padStart(2, "0")}`;
}

/** The well-known TCP ports of the agent inside a sandbox. */
export const AGENT_CONTROL_PORT = 1024;
export const AGENT_FORWARD_PORT = 1025;
