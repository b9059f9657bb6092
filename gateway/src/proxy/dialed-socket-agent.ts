import * as http from "node:http";
import type { Duplex } from "node:stream";

/**
 * An http.Agent that hands out one socket the caller has already dialed (a forward channel
 * through the sandbox agent), so http-proxy-3 speaks HTTP over it without resolving or
 * connecting to any host. One request per agent: no pooling, no keep-alive (a pooled socket
 * could outlive a pause or restore of the sandbox).
 */
export class DialedSocketAgent extends http.Agent {
  #socket: Duplex | undefined;

  constructor(socket: Duplex) {
    super({ keepAlive: false, maxSockets: 1 });
    this.#socket = socket;
  }

  override createConnection(
    _options: unknown,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket === undefined) {
      // Never reached (one request per agent); refused rather than dialing somewhere.
      const err = new Error("the forwarded connection was already used");
      if (callback) process.nextTick(() => callback(err, undefined as unknown as Duplex));
      return undefined;
    }
    return socket;
  }
}
