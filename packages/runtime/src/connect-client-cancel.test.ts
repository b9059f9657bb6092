import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import { type Http2Server, constants, createServer } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { StoreService } from "@bhatti/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServiceClient, isServiceUnreachable } from "./connect-client.js";

/**
 * A service that dies mid-call resets its streams: the caller must see Unavailable (the gateway
 * answers 503, retry), while a call the caller itself aborted stays Canceled (499).
 */
describe("a call cut off by the service, over HTTP/2 (the bench baseline)", () => {
  let dir: string;
  let server: Http2Server | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-cancel-"));
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** An HTTP/2 server on a Unix socket that hands each stream to `onStream`. */
  const listen = async (onStream: (stream: import("node:http2").ServerHttp2Stream) => void) => {
    const socketPath = join(dir, "svc.sock");
    server = createServer();
    server.on("stream", onStream);
    await new Promise<void>((resolve) => server?.listen(socketPath, resolve));
    return socketPath;
  };

  it("is Unavailable when the service resets the stream while the caller still waits", async () => {
    const socketPath = await listen((stream) => stream.close(constants.NGHTTP2_CANCEL));
    const { client, close } = createServiceClient(StoreService, socketPath, { httpVersion: "2" });
    try {
      const err = await client.health({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.rawMessage).toMatch(/service stopped during the call/);
      // Not "unreachable": the request reached the service, so it is not safe to resend blindly.
      expect(isServiceUnreachable(err)).toBe(false);
    } finally {
      close();
    }
  });

  it("stays Canceled when the caller aborts", async () => {
    let arrived: () => void = () => {};
    const streamArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const socketPath = await listen((stream) => {
      stream.on("error", () => {});
      arrived(); // never answers
    });
    const { client, close } = createServiceClient(StoreService, socketPath, { httpVersion: "2" });
    try {
      const abort = new AbortController();
      const call = client.health({}, { signal: abort.signal }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      await streamArrived;
      abort.abort();
      expect((await call)?.code).toBe(Code.Canceled);
    } finally {
      close();
    }
  });
});

/** The same over HTTP/1.1 (the product's transport), where a service can only cut a call by closing its connection. */
describe("a call cut off by the service, over HTTP/1.1", () => {
  let dir: string;
  let server: http.Server | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-cancel-"));
  });
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const listen = async (onRequest: http.RequestListener) => {
    const socketPath = join(dir, "svc.sock");
    server = http.createServer(onRequest);
    await new Promise<void>((resolve) => server?.listen(socketPath, resolve));
    return socketPath;
  };

  it("is Unavailable when the service closes the connection while the caller still waits", async () => {
    const socketPath = await listen((req) => req.socket.destroy());
    const { client, close } = createServiceClient(StoreService, socketPath, { httpVersion: "1.1" });
    try {
      const err = await client.health({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      // A socket error (ECONNRESET), classed like a dead HTTP/2 session: Unavailable, 503.
      expect(err?.code).toBe(Code.Unavailable);
    } finally {
      close();
    }
  });

  it("is Unavailable when the service closes the connection halfway through its answer", async () => {
    const socketPath = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "application/proto", "content-length": "100" });
      res.write(Buffer.alloc(10), () => res.socket?.destroy());
    });
    const { client, close } = createServiceClient(StoreService, socketPath, { httpVersion: "1.1" });
    try {
      const err = await client.health({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
    } finally {
      close();
    }
  });

  it("stays Canceled when the caller aborts", async () => {
    let arrived: () => void = () => {};
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const socketPath = await listen(() => arrived()); // never answers
    const { client, close } = createServiceClient(StoreService, socketPath, { httpVersion: "1.1" });
    try {
      const abort = new AbortController();
      const call = client.health({}, { signal: abort.signal }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      await requestArrived;
      abort.abort();
      expect((await call)?.code).toBe(Code.Canceled);
    } finally {
      close();
    }
  });
});
