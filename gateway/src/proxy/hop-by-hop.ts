import type { IncomingHttpHeaders } from "node:http";

/** RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies still see. */
export const HOP_BY_HOP: readonly string[] = [
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
];

/**
 * Removes hop-by-hop headers of an incoming request before it is forwarded: the fixed list and
 * every header named in `Connection`. `Connection` and `Upgrade` themselves stay for a WebSocket
 * handshake (they must reach the app); Node's client sets its own `Connection` otherwise.
 */
export function stripHopByHop(headers: IncomingHttpHeaders, upgrade: boolean): void {
  const named = (headers.connection ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== "" && h !== "upgrade" && h !== "close" && h !== "keep-alive");
  for (const h of [...HOP_BY_HOP, ...named]) delete headers[h];
  if (!upgrade) {
    delete headers.connection;
    delete headers.upgrade;
  }
}
