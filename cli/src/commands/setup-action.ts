import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { SandboxService } from "@bhatti/proto/v1/sandbox_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { stringify } from "yaml";
import { CliError } from "../cli-error.js";
import { DEFAULT_GATEWAY_URL, clientConfigPath, resolveClientConfig } from "../client-config.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit } from "../output.js";

/** Reads answers line by line (works for a terminal and for piped input alike). */
function createPrompter() {
  const rl = createInterface({ input: process.stdin, terminal: false });
  const lines: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
  let closed = false;
  rl.on("line", (line) => {
    const w = waiters.shift();
    if (w !== undefined) w(line);
    else lines.push(line);
  });
  rl.on("close", () => {
    closed = true;
    for (const w of waiters.splice(0)) w(undefined);
  });
  return {
    ask(question: string, mask: boolean): Promise<string | undefined> {
      process.stderr.write(question);
      const muted = mask && process.stdin.isTTY;
      if (muted) process.stdin.setRawMode(true);
      const next = lines.shift();
      const answer =
        next !== undefined || closed
          ? Promise.resolve(next)
          : new Promise<string | undefined>((resolve) => waiters.push(resolve));
      return answer.finally(() => {
        if (muted) {
          process.stdin.setRawMode(false);
          process.stderr.write("\n");
        }
      });
    },
    close: () => rl.close(),
  };
}

/** Masked input in raw mode collects the characters itself (the line reader sees no newline). */
async function askSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY) return "";
  process.stderr.write(question);
  process.stdin.setRawMode(true);
  process.stdin.resume();
  return new Promise((resolve, reject) => {
    let value = "";
    const onData = (chunk: Buffer) => {
      for (const byte of chunk) {
        if (byte === 0x0d || byte === 0x0a) {
          finish();
          resolve(value);
          return;
        }
        if (byte === 0x03) {
          finish();
          reject(new CliError("aborted"));
          return;
        }
        if (byte === 0x7f) value = value.slice(0, -1);
        else value += String.fromCharCode(byte);
      }
    };
    const finish = () => {
      process.stdin.off("data", onData);
      process.stdin.setRawMode(false);
      process.stdin.pause();
      process.stderr.write("\n");
    };
    process.stdin.on("data", onData);
  });
}

export async function runSetup(options: GlobalOptions): Promise<void> {
  const current = resolveClientConfig({});
  let url = options.url;
  let token = options.token;
  if (url === undefined || token === undefined) {
    if (process.stdin.isTTY) {
      const prompter = createPrompter();
      try {
        if (url === undefined) {
          const answer = await prompter.ask(
            `bhatti API URL [${current.url || DEFAULT_GATEWAY_URL}]: `,
            false,
          );
          url = answer === undefined || answer.trim() === "" ? current.url : answer.trim();
        }
      } finally {
        prompter.close();
      }
      if (token === undefined) token = (await askSecret("API key (bht_...): ")).trim();
    } else {
      const prompter = createPrompter();
      try {
        url ??= (await prompter.ask("bhatti API URL: ", false))?.trim() || current.url;
        token ??= (await prompter.ask("API key: ", true))?.trim() ?? "";
      } finally {
        prompter.close();
      }
    }
  }
  if (token === undefined || token === "") throw new CliError("an API key is required");
  try {
    new URL(url);
  } catch {
    throw new CliError(`invalid URL ${JSON.stringify(url)}`);
  }

  const file = clientConfigPath();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, stringify({ api_url: url.replace(/\/+$/, ""), auth_token: token }), { mode: 0o600 });
  chmodSync(file, 0o600);

  const { client } = createGatewayClient(SandboxService, { url, token }, { defaultTimeoutMs: 15_000 });
  try {
    const { sandboxes } = await client.listSandboxes({});
    emit(options, { status: "ok", config: file, api_url: url, sandboxes: sandboxes.length }, () =>
      process.stdout.write(`✓ authenticated (${sandboxes.length} sandboxes)\nwrote ${file}\n`),
    );
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Unauthenticated) {
      throw new CliError(`authentication failed: ${err.rawMessage} (config written to ${file})`);
    }
    throw e;
  }
}
