import type { Socket } from "node:net";
import {
  type ExecRequest,
  FrameDecoder,
  FrameType,
  decodeExitPayload,
  encodeFrame,
  encodeJsonFrame,
} from "@bhatti/agent-protocol";
import type { AgentEndpoint } from "../engine/engine.js";
import type { GuestDialer } from "./guest-dialer.js";

/**
 * The slice of the agent protocol the engine itself needs: a one-shot exec, used to tell
 * that an agent answers (WaitReady at create and restore, as in bhatti v1 §1.4). Everything
 * else (sessions, files, forwards) is the gateway's, through @bhatti/agent-client.
 */
export interface ExecOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function agentExec(
  dialer: GuestDialer,
  endpoint: AgentEndpoint,
  request: ExecRequest,
  timeoutMs = 30_000,
): Promise<ExecOutcome> {
  const sock: Socket = await dialer.connect(endpoint.host, endpoint.controlPort, Math.min(timeoutMs, 2000));
  return new Promise<ExecOutcome>((resolve, reject) => {
    const decoder = new FrameDecoder();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const finish = (e: Error | undefined, v?: ExecOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (e) reject(e);
      else resolve(v as ExecOutcome);
    };
    const timer = setTimeout(
      () => finish(new Error(`agent exec timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on("data", (chunk: Buffer) => {
      decoder.push(chunk);
      for (let f = decoder.next(); f; f = decoder.next()) {
        if (f.type === FrameType.STDOUT) out.push(Buffer.from(f.payload));
        else if (f.type === FrameType.STDERR) err.push(Buffer.from(f.payload));
        else if (f.type === FrameType.ERROR)
          finish(new Error(`agent error: ${Buffer.from(f.payload).toString()}`));
        else if (f.type === FrameType.EXIT) {
          finish(undefined, {
            exitCode: decodeExitPayload(f.payload) ?? 1,
            stdout: Buffer.concat(out).toString(),
            stderr: Buffer.concat(err).toString(),
          });
        }
      }
    });
    sock.on("error", (e) => finish(e));
    sock.on("close", () => finish(new Error("agent closed the connection before EXIT")));
    if (endpoint.token) sock.write(encodeFrame(FrameType.AUTH, endpoint.token));
    sock.write(encodeJsonFrame(FrameType.EXEC_REQ, request));
  });
}

/**
 * Polls `exec true` until the agent answers (v1 WaitReady): short per-attempt timeouts
 * first (100 ms ×3, 250 ms ×3, 500 ms ×4, then 2 s), 10 ms apart, within `timeoutMs`.
 */
export async function waitAgentReady(
  dialer: GuestDialer,
  endpoint: AgentEndpoint,
  timeoutMs = 30_000,
  isAlive: () => boolean = () => true,
): Promise<number> {
  const started = Date.now();
  let lastError: unknown;
  for (let attempt = 1; ; attempt++) {
    const per = attempt <= 3 ? 100 : attempt <= 6 ? 250 : attempt <= 10 ? 500 : 2000;
    try {
      const r = await agentExec(dialer, endpoint, { argv: ["true"] }, per);
      if (r.exitCode === 0) return attempt;
      lastError = new Error(`exec true exited ${r.exitCode}`);
    } catch (e) {
      lastError = e;
    }
    if (!isAlive()) throw new Error(`sandbox exited before its agent answered: ${String(lastError)}`);
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `agent did not answer within ${timeoutMs} ms: ${(lastError as Error)?.message ?? lastError}`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
