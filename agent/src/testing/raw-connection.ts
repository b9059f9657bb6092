// Raw frame-level access to a running agent, for tests that speak the protocol by hand.
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { FrameReader, FrameType, encodeFrame, encodeJsonFrame, type Frame } from "@bhatti/agent-protocol";

export interface RawConnection {
  socket: Socket;
  send(type: number, payload?: Uint8Array | string): void;
  sendJson(type: number, value: unknown): void;
  /** Next frame, null at EOF; rejects after `timeoutMs` (default 10 s). */
  read(timeoutMs?: number): Promise<Frame | null>;
  /** Every frame until EOF. */
  readAll(timeoutMs?: number): Promise<Frame[]>;
  close(): void;
}

export async function rawConnect(at: { host: string; port: number }, token?: string): Promise<RawConnection> {
  const socket = connect({ host: at.host, port: at.port, allowHalfOpen: true });
  socket.on("error", () => {});
  await once(socket, "connect");
  const reader = new FrameReader(socket);
  const conn: RawConnection = {
    socket,
    send: (type, payload) => {
      socket.write(encodeFrame(type, payload));
    },
    sendJson: (type, value) => {
      socket.write(encodeJsonFrame(type, value));
    },
    read: (timeoutMs = 10_000) =>
      reader.read(timeoutMs).catch((err: Error) => {
        if (err.name === "FrameReadTimeoutError") throw err;
        return null;
      }),
    readAll: async (timeoutMs = 10_000) => {
      const frames: Frame[] = [];
      for (let f = await conn.read(timeoutMs); f !== null; f = await conn.read(timeoutMs)) frames.push(f);
      return frames;
    },
    close: () => socket.destroy(),
  };
  if (token !== undefined && token !== "") conn.send(FrameType.AUTH, token);
  return conn;
}

export function textOf(frame: Frame | null | undefined): string {
  return frame === null || frame === undefined ? "<eof>" : frame.payload.toString("utf8");
}
