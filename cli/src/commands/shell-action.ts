import { WebSocket } from "ws";
import { CliError } from "../cli-error.js";
import { resolveClientConfig } from "../client-config.js";
import type { GlobalOptions } from "../global-options.js";

/** Ctrl+\ (FS, 0x1c) detaches, as in v1. */
const DETACH_BYTE = 0x1c;
const READ_DEADLINE_MS = 90_000;

function shellUrl(base: string, sandbox: string, opts: { new?: boolean; session?: string }): string {
  const url = new URL(`${base}/sandboxes/${encodeURIComponent(sandbox)}/ws`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (opts.session !== undefined) url.searchParams.set("session", opts.session);
  if (opts.new === true) url.searchParams.set("new", "true");
  return url.toString();
}

/**
 * A raw terminal over the shell WebSocket. Exits 0 when the shell exits (close 1000) or on
 * detach, 1 when the connection is lost (with a reconnect hint).
 */
export async function runShell(
  options: GlobalOptions,
  sandbox: string,
  opts: { new?: boolean; session?: string },
): Promise<void> {
  const config = resolveClientConfig(options);
  const headers: Record<string, string> = {};
  if (config.token !== undefined) headers["authorization"] = `Bearer ${config.token}`;
  const ws = new WebSocket(shellUrl(config.url, sandbox, opts), { headers, perMessageDeflate: false });
  const stdin = process.stdin;
  const stdout = process.stdout;
  let sessionId = "";
  let detached = false;
  let rawMode = false;

  const restore = () => {
    if (rawMode && stdin.isTTY) stdin.setRawMode(false);
    rawMode = false;
    stdin.pause();
  };
  const sendResize = () => {
    if (ws.readyState === WebSocket.OPEN && stdout.isTTY) {
      ws.send(JSON.stringify({ type: "resize", rows: stdout.rows, cols: stdout.columns }));
    }
  };

  await new Promise<void>((resolve, reject) => {
    let lastHeard = Date.now();
    const deadline = setInterval(() => {
      if (Date.now() - lastHeard > READ_DEADLINE_MS) ws.terminate();
    }, 5_000);
    deadline.unref();
    const heard = () => {
      lastHeard = Date.now();
    };
    ws.on("ping", heard);
    ws.on("pong", heard);

    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => {
        let message = `HTTP ${res.statusCode}`;
        try {
          message = (JSON.parse(body) as { error?: string }).error ?? message;
        } catch {
          // not JSON
        }
        reject(new CliError(message));
      });
    });
    ws.on("error", (e) => reject(new CliError(`cannot open a shell at ${config.url}: ${e.message}`)));

    ws.on("open", () => {
      if (stdin.isTTY) {
        stdin.setRawMode(true);
        rawMode = true;
      }
      stdin.resume();
      stdin.on("data", (chunk: Buffer) => {
        const at = chunk.indexOf(DETACH_BYTE);
        if (at === -1) {
          ws.send(chunk, { binary: true });
          return;
        }
        // Bytes typed before Ctrl+\ still reach the shell; then the session is left running.
        if (at > 0) ws.send(chunk.subarray(0, at), { binary: true });
        detached = true;
        ws.close(1000, "detached");
      });
      stdin.on("end", () => {
        // Input ended (not a terminal): leave the session running, like a detach.
        detached = true;
        ws.close(1000, "stdin closed");
      });
      process.on("SIGWINCH", sendResize);
      sendResize();
    });

    ws.on("message", (data, isBinary) => {
      heard();
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (isBinary) {
        stdout.write(buf);
        return;
      }
      const text = buf.toString("utf8");
      try {
        const msg = JSON.parse(text) as { type?: string; session_id?: string };
        if (msg.type === "session" && typeof msg.session_id === "string") {
          sessionId = msg.session_id;
          return;
        }
      } catch {
        // plain text from the server (e.g. a wake error)
      }
      process.stderr.write(`${text}\n`);
    });

    ws.on("close", (code) => {
      clearInterval(deadline);
      process.off("SIGWINCH", sendResize);
      restore();
      if (detached) {
        process.stderr.write(
          `\r\ndetached from session ${sessionId} (reattach: bhatti shell ${sandbox})\r\n`,
        );
        resolve();
      } else if (code === 1000) {
        resolve();
      } else {
        const where = sessionId !== "" ? `session ${sessionId}` : "the shell";
        reject(
          new CliError(`connection to ${where} lost (code ${code})`, `reconnect: bhatti shell ${sandbox}`),
        );
      }
    });
  });
}
