import { readFileSync } from "node:fs";
import { confirmDestructive } from "../confirm-destructive.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CliError } from "../cli-error.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { sandboxClient } from "../sandbox-client.js";
import { readSandboxNames, writeSandboxNames } from "../sandbox-name-cache.js";
import { sandboxJson, statusText, thermalText } from "../sandbox-output.js";
import type { Sandbox } from "@bhatti/proto/v1/sandbox_pb";
import { sessionJson } from "@bhatti/proto/rest-json";
import { parseVolumeFlag } from "@bhatti/proto/vocabulary";

function printSandbox(options: GlobalOptions, s: Sandbox): void {
  emit(options, sandboxJson(s), () => {
    const thermal = thermalText(s);
    const rows: [string, string][] = [
      ["id", s.id],
      ["name", s.name],
      ["status", statusText(s)],
      ...(thermal !== undefined ? [["thermal", thermal] as [string, string]] : []),
      ["ip", s.ip || "-"],
      ["image", s.image],
      ["cpus", String(s.cpus)],
      ["memory", `${s.memoryMb} MB`],
      ["keep-hot", s.keepHot ? "yes" : "no"],
      [
        "labels",
        Object.entries(s.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",") || "-",
      ],
      ["created", s.createdAt === undefined ? "-" : timestampDate(s.createdAt).toISOString()],
    ];
    if (s.stoppedAt !== undefined) rows.push(["stopped", timestampDate(s.stoppedAt).toISOString()]);
    const width = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`);
  });
}

export async function runCreate(options: GlobalOptions, opts: Record<string, unknown>): Promise<void> {
  const files = ((opts["file"] as string[] | undefined) ?? []).map((spec) => {
    const colon = spec.lastIndexOf(":");
    if (colon <= 0 || colon === spec.length - 1)
      throw new CliError(`--file expects LOCAL:GUEST, got ${JSON.stringify(spec)}`);
    const local = spec.slice(0, colon);
    const guestPath = spec.slice(colon + 1);
    let content: Buffer;
    try {
      content = readFileSync(local);
    } catch (e) {
      throw new CliError(`cannot read ${local}: ${(e as Error).message}`);
    }
    return { guestPath, content, mode: "" };
  });
  const volumes = ((opts["volume"] as string[] | undefined) ?? []).map((spec) => {
    const v = parseVolumeFlag(spec);
    if ("error" in v) throw new CliError(v.error);
    return { name: v.name, mount: v.mount, readOnly: v.readOnly };
  });
  const { client } = sandboxClient(options);
  const res = await client.createSandbox({
    name: (opts["name"] as string | undefined) ?? "",
    image: (opts["image"] as string | undefined) ?? "",
    cpus: (opts["cpus"] as number | undefined) ?? 0,
    memoryMb: (opts["memory"] as number | undefined) ?? 0,
    diskSizeMb: (opts["diskSize"] as number | undefined) ?? 0,
    env: (opts["env"] as Record<string, string> | undefined) ?? {},
    secrets: (opts["secret"] as string[] | undefined) ?? [],
    files,
    labels: (opts["label"] as Record<string, string> | undefined) ?? {},
    keepHot: opts["keepHot"] === true,
    init: (opts["init"] as string | undefined) ?? "",
    volumes,
  });
  const s = res.sandbox;
  if (s === undefined) throw new CliError("the server returned no sandbox");
  writeSandboxNames([...readSandboxNames(), s.name]);
  // REST tells an existing sandbox by its status (200, not 201); here the notice goes to stderr in
  // both modes, so `--json` prints exactly the REST body.
  if (res.existing) process.stderr.write(`sandbox ${s.name} already exists\n`);
  printSandbox(options, s);
}

export async function runInspect(options: GlobalOptions, sandbox: string): Promise<void> {
  const { client } = sandboxClient(options, 30_000);
  const { sandbox: s } = await client.getSandbox({ sandbox });
  if (s === undefined) throw new CliError("the server returned no sandbox");
  printSandbox(options, s);
}

export async function runEdit(
  options: GlobalOptions,
  sandbox: string,
  opts: Record<string, unknown>,
): Promise<void> {
  if (opts["keepHot"] === true && opts["allowCold"] === true)
    throw new CliError("--keep-hot and --allow-cold conflict");
  const { client } = sandboxClient(options);
  const { sandbox: s } = await client.updateSandbox({
    sandbox,
    ...(opts["keepHot"] === true ? { keepHot: true } : opts["allowCold"] === true ? { keepHot: false } : {}),
    ...(typeof opts["name"] === "string" ? { name: opts["name"] } : {}),
    labelsAdd: (opts["label"] as Record<string, string> | undefined) ?? {},
    labelsRemove: (opts["labelDelete"] as string[] | undefined) ?? [],
  });
  if (s === undefined) throw new CliError("the server returned no sandbox");
  printSandbox(options, s);
}

export async function runStop(options: GlobalOptions, sandbox: string): Promise<void> {
  const { client } = sandboxClient(options);
  const { sandbox: s } = await client.stopSandbox({ sandbox });
  if (s === undefined) throw new CliError("the server returned no sandbox");
  emit(options, sandboxJson(s), () => process.stdout.write(`stopped ${s.name}\n`));
}

export async function runStart(options: GlobalOptions, sandbox: string, force: boolean): Promise<void> {
  const { client } = sandboxClient(options);
  const { sandbox: s } = await client.startSandbox({ sandbox, force });
  if (s === undefined) throw new CliError("the server returned no sandbox");
  emit(options, sandboxJson(s), () => process.stdout.write(`started ${s.name}\n`));
}

export async function runDestroy(options: GlobalOptions, sandbox: string, yes: boolean): Promise<void> {
  await confirmDestructive(`destroy sandbox ${sandbox} and everything in it?`, yes);
  const { client } = sandboxClient(options);
  await client.deleteSandbox({ sandbox });
  writeSandboxNames(readSandboxNames().filter((n) => n !== sandbox));
  emit(options, { status: "destroyed" }, () => process.stdout.write(`destroyed ${sandbox}\n`));
}

export async function runPs(options: GlobalOptions, sandbox: string): Promise<void> {
  const { client } = sandboxClient(options, 60_000);
  const { sessions } = await client.listSessions({ sandbox });
  emit(options, sessions.map(sessionJson), () =>
    printTable(
      ["ID", "COMMAND", "RUNNING", "ATTACHED"],
      sessions.map((s) => [s.sessionId, s.command, s.running ? "yes" : "no", s.attached ? "yes" : "no"]),
    ),
  );
}
