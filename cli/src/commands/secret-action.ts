import { SecretService } from "@bhatti/proto/v1/secret_pb";
import { secretJson } from "@bhatti/proto/rest-json";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { confirmDestructive } from "../confirm-destructive.js";

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new CliError(
      "no value given",
      "pass --value VALUE, or pipe the value on stdin: echo -n v | bhatti secret set NAME",
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // One trailing newline is what `echo` adds, not part of the secret.
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

export async function runSecretSet(
  options: GlobalOptions,
  name: string,
  value: string | undefined,
): Promise<void> {
  const resolved = value ?? (await readStdin());
  const { client } = createGatewayClient(SecretService, options);
  const res = await client.setSecret({ name, value: resolved });
  emit(options, res.secret === undefined ? {} : secretJson(res.secret), () =>
    process.stdout.write(`${res.created ? "created" : "updated"} secret ${res.secret?.name}\n`),
  );
}

export async function runSecretList(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(SecretService, options);
  const { secrets } = await client.listSecrets({});
  const rows = secrets.map(secretJson);
  emit(options, rows, () =>
    printTable(
      ["NAME", "CREATED", "UPDATED"],
      rows.map((r) => [r["name"] ?? "", r["created_at"] ?? "", r["updated_at"] ?? ""]),
    ),
  );
}

export async function runSecretDelete(options: GlobalOptions, name: string, yes: boolean): Promise<void> {
  await confirmDestructive(`Delete secret ${name}?`, yes);
  const { client } = createGatewayClient(SecretService, options);
  await client.deleteSecret({ name });
  emit(options, { status: "deleted" }, () => process.stdout.write(`deleted secret ${name}\n`));
}
