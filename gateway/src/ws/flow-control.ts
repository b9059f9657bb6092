import type { WebSocket } from "ws";

/**
 * Bytes a WebSocket may have queued (in ws and in the socket) before the sender waits. Each
 * client that stops reading costs at most about this much, plus the agent connection's read
 * buffer: the wait stops reading agent frames, which pauses the agent socket in turn.
 */
export const WS_SEND_HIGH_WATER_MARK = 256 * 1024;

/**
 * Sends one message; when the socket's queue is past the watermark, resolves only once this
 * message has been handed to the kernel (everything before it too) or the socket closed.
 */
export function sendPaced(ws: WebSocket, data: Buffer | string, binary: boolean): Promise<void> {
  if (ws.readyState !== ws.OPEN) return Promise.resolve();
  const size = typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
  if (ws.bufferedAmount + size <= WS_SEND_HIGH_WATER_MARK) {
    ws.send(data, { binary });
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      ws.off("close", done);
      resolve();
    };
    ws.once("close", done);
    // The callback runs when the frame is written out (or with an error if the socket died).
    ws.send(data, { binary }, done);
  });
}

/**
 * Feeds client messages to the command's stdin in order, one write at a time. While a write
 * waits for the agent (it stopped reading stdin), the WebSocket is paused, so a client that
 * floods stdin is held by TCP instead of queueing in the gateway.
 */
export function stdinPump(
  ws: WebSocket,
  write: (data: Buffer) => Promise<void>,
  onError: (e: unknown) => void,
): (data: Buffer) => void {
  let chain = Promise.resolve();
  let queued = 0;
  let failed = false;
  return (data) => {
    if (failed) return;
    queued++;
    if (queued > 1) ws.pause();
    chain = chain
      .then(() => write(data))
      .then(
        () => {
          queued--;
          if (queued === 0 && ws.isPaused) ws.resume();
        },
        (e: unknown) => {
          if (failed) return;
          failed = true;
          onError(e);
        },
      );
  };
}
