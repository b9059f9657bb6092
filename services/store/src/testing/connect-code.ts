import { type Code, ConnectError } from "@connectrpc/connect";

/** The Connect code a synchronous domain call fails with, or undefined if it succeeds. */
export function codeOf(fn: () => unknown): Code | undefined {
  try {
    fn();
  } catch (e) {
    return ConnectError.from(e).code;
  }
  return undefined;
}
