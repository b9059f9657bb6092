/**
 * The HTTP version the services speak to each other over their Unix sockets. HTTP/1.1 is the
 * product's transport: a unary call is one write each way, where HTTP/2 adds frames (SETTINGS and
 * WINDOW_UPDATE acks, trailers) that each cost a cross-process wake-up on a loaded machine
 * (bench/seed-table/rpc-transport.ts, docs/performance.md). HTTP/2 stays selectable only so a
 * benchmark can measure its baseline in the same run; servers and clients of one `bhatti serve`
 * must agree, so the variable is set for the whole process tree or not at all.
 */
export type RpcHttpVersion = "1.1" | "2";

export const RPC_HTTP_VERSION_ENV = "BHATTI_RPC_HTTP_VERSION";

export function rpcHttpVersion(env: NodeJS.ProcessEnv = process.env): RpcHttpVersion {
  const v = env[RPC_HTTP_VERSION_ENV];
  if (v === undefined || v === "" || v === "1.1") return "1.1";
  if (v === "2") return "2";
  throw new Error(`${RPC_HTTP_VERSION_ENV} must be "1.1" or "2", not ${JSON.stringify(v)}`);
}
