import type { Socket } from "node:net";
import type { FrameReader } from "@bhatti/agent-protocol";
import type { FrameSink } from "./frame-sink.js";

/** An authenticated control connection, after its request frame has been read. */
export interface ControlConnection {
  socket: Socket;
  reader: FrameReader;
  sink: FrameSink;
  /**
   * The host asked to keep the connection for further requests (REUSE_REQ). A one-shot exec
   * then reads its input up to STDIN_EOF (or the half-close) before it completes.
   */
  reused: boolean;
}
