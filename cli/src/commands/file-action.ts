import { fileEntryJson } from "@bhatti/proto/rest-json";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CliError } from "../cli-error.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printJson, printTable } from "../output.js";
import { sandboxClient } from "../sandbox-client.js";

const MAX_WRITE = 100 * 1024 * 1024;

export async function runFileRead(
  options: GlobalOptions,
  sandbox: string,
  path: string,
  opts: Record<string, number | undefined>,
): Promise<void> {
  const { client } = sandboxClient(options);
  const parts: Buffer[] = [];
  let size = 0;
  let mode = "";
  let first = true;
  for await (const msg of client.readFile({
    sandbox,
    path,
    offset: opts["offset"] ?? 0,
    limit: opts["limit"] ?? 0,
    maxBytes: BigInt(opts["maxBytes"] ?? 0),
  })) {
    if (first) {
      first = false;
      size = Number(msg.size);
      mode = msg.mode;
    }
    if (msg.data.byteLength === 0) continue;
    if (options.json === true) parts.push(Buffer.from(msg.data));
    else if (!process.stdout.write(msg.data)) await new Promise((r) => process.stdout.once("drain", r));
  }
  if (options.json === true) {
    printJson({ path, size, mode, content: Buffer.concat(parts).toString("utf8") });
  }
}

export async function runFileWrite(
  options: GlobalOptions,
  sandbox: string,
  path: string,
  mode: string,
): Promise<void> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_WRITE) throw new CliError(`input is larger than ${MAX_WRITE} bytes`);
    parts.push(chunk as Buffer);
  }
  const { client } = sandboxClient(options);
  await client.writeFile({ sandbox, path, content: Buffer.concat(parts), mode });
  emit(options, { status: "ok" }, () => process.stderr.write(`wrote ${size} bytes to ${path}\n`));
}

export async function runFileLs(options: GlobalOptions, sandbox: string, path: string): Promise<void> {
  const { client } = sandboxClient(options, 60_000);
  const { files } = await client.listFiles({ sandbox, path });
  emit(options, files.map(fileEntryJson), () =>
    printTable(
      ["MODE", "SIZE", "MODIFIED", "NAME"],
      files.map((f) => [
        f.mode,
        String(f.size),
        (f.modifiedAt === undefined ? "" : timestampDate(f.modifiedAt).toISOString())
          .slice(0, 19)
          .replace("T", " "),
        f.isDir ? `${f.name}/` : f.name,
      ]),
    ),
  );
}
