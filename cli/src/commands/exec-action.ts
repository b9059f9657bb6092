import { fstatSync } from "node:fs";
import { CliError } from "../cli-error.js";
import type { GlobalOptions } from "../global-options.js";
import { printJson } from "../output.js";
import { jsonServiceClient } from "../connect-json.js";

const MAX_STDIN = 16 * 1024 * 1024;

/** One SandboxServiceExecResponse in proto3 JSON: the `event` oneof, bytes as base64. */
interface ExecEventJson {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  detached?: { pid?: number; outputFile?: string };
}

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer;
    size += buf.byteLength;
    if (size > MAX_STDIN)
      throw new CliError(`stdin is larger than ${MAX_STDIN} bytes; use bhatti file write`);
    parts.push(buf);
  }
  return Buffer.concat(parts);
}

/**
 * Stdin is passed through when it is a pipe (`cmd | bhatti exec`) or a file (`< file`). A
 * terminal or a socket (how Node and some tools wire a child's stdin, often never closed) is
 * left alone, so `bhatti exec` called from a program cannot hang waiting for EOF.
 */
function stdinCarriesInput(): boolean {
  try {
    const st = fstatSync(0);
    return st.isFIFO() || st.isFile();
  } catch {
    return false;
  }
}

/** Writes and waits for the pipe, so large outputs keep their order and do not pile up in memory. */
function write(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> | undefined {
  if (stream.write(data)) return undefined;
  return new Promise((resolve) => stream.once("drain", resolve));
}

export async function runExec(
  options: GlobalOptions,
  sandbox: string,
  argv: string[],
  opts: Record<string, unknown>,
): Promise<void> {
  if (argv.length === 0) throw new CliError("cmd required: bhatti exec NAME -- COMMAND [ARGS...]");
  const detach = opts["detach"] === true;
  const stdin =
    opts["stdin"] !== false && !detach && stdinCarriesInput() ? await readStdin() : new Uint8Array();
  const timeout = opts["timeout"] as number | undefined;
  // The deadline of the call outlives the command's own (the server kills it first).
  const timeoutSec = timeout !== undefined && timeout >= 1 && timeout <= 86_400 ? timeout : 300;
  // Connect's JSON encoding (bytes as base64): no protobuf descriptors to build for exec.
  const client = jsonServiceClient("bhatti.v1.SandboxService", options, (timeoutSec + 120) * 1000);
  const stream = client.serverStream("Exec", {
    sandbox,
    cmd: argv,
    timeoutSec: timeout ?? 0,
    env: (opts["env"] as Record<string, string> | undefined) ?? {},
    cwd: (opts["cwd"] as string | undefined) ?? "",
    stdin: Buffer.from(stdin).toString("base64"),
    detach,
    outputFile: (opts["outputFile"] as string | undefined) ?? "",
  });

  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let exitCode: number | undefined;
  for await (const msg of stream) {
    const ev = msg as ExecEventJson;
    if (ev.stdout !== undefined) {
      const data = Buffer.from(ev.stdout, "base64");
      if (options.json === true) stdout.push(data);
      else await write(process.stdout, data);
    } else if (ev.stderr !== undefined) {
      const data = Buffer.from(ev.stderr, "base64");
      if (options.json === true) stderr.push(data);
      else await write(process.stderr, data);
    } else if (ev.exitCode !== undefined) {
      exitCode = ev.exitCode;
    } else if (ev.detached !== undefined) {
      const pid = ev.detached.pid ?? 0;
      const outputFile = ev.detached.outputFile ?? "";
      if (options.json === true) printJson({ pid, output_file: outputFile, detached: true });
      else process.stdout.write(`pid: ${pid}\noutput: ${outputFile}\n`);
      return;
    }
  }
  if (exitCode === undefined) throw new CliError("the command's stream ended without an exit code");
  if (options.json === true) {
    printJson({
      exit_code: exitCode,
      stdout: Buffer.concat(stdout).toString("utf8"),
      stderr: Buffer.concat(stderr).toString("utf8"),
    });
  }
  process.exitCode = exitCode;
}
