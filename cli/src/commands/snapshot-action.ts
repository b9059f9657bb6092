import { SnapshotService } from "@bhatti/proto/v1/snapshot_pb";
import { sandboxJson, snapshotJson } from "@bhatti/proto/rest-json";
import { CliError } from "../cli-error.js";
import { confirmDestructive } from "../confirm-destructive.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";

/** Create and resume save or load a whole sandbox (seconds per GB): longer than the 60 s default. */
const LONG_CALL = { defaultTimeoutMs: 600_000 };

export async function runSnapshotCreate(
  options: GlobalOptions,
  sandbox: string,
  name: string,
  fsOnly: boolean,
): Promise<void> {
  const { client } = createGatewayClient(SnapshotService, options, LONG_CALL);
  const res = await client.createSnapshot({ sandbox, name, fsOnly });
  if (res.snapshot === undefined) throw new CliError("the server returned no snapshot");
  const s = snapshotJson(res.snapshot);
  emit(options, s, () =>
    process.stdout.write(
      `created ${s.type} snapshot ${s.name} of ${sandbox} (${s.size_mb} MB, paused ${res.pausedMs} ms)\n`,
    ),
  );
}

export async function runSnapshotList(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(SnapshotService, options);
  const rows = (await client.listSnapshots({})).snapshots.map(snapshotJson);
  emit(options, rows, () =>
    printTable(
      ["NAME", "TYPE", "SIZE_MB", "SOURCE", "CREATED"],
      rows.map((r) => [r.name, r.type, String(r.size_mb), r.source_sandbox, r.created_at]),
    ),
  );
}

export async function runSnapshotResume(
  options: GlobalOptions,
  snapshot: string,
  flags: { name?: string; into?: string },
): Promise<void> {
  if (flags.name !== undefined && flags.into !== undefined) {
    throw new CliError("--name and --into cannot be used together");
  }
  const { client } = createGatewayClient(SnapshotService, options, LONG_CALL);
  const { sandbox } = await client.resumeSnapshot({
    snapshot,
    name: flags.name ?? "",
    into: flags.into ?? "",
  });
  if (sandbox === undefined) throw new CliError("the server returned no sandbox");
  emit(options, sandboxJson(sandbox), () =>
    process.stdout.write(
      flags.into !== undefined
        ? `rewound ${sandbox.name} to ${snapshot}\n`
        : `resumed ${snapshot} as ${sandbox.name} (${sandbox.id}, ${sandbox.ip})\n`,
    ),
  );
}

export async function runSnapshotDelete(options: GlobalOptions, name: string, yes: boolean): Promise<void> {
  await confirmDestructive(`Delete snapshot ${name}?`, yes);
  const { client } = createGatewayClient(SnapshotService, options);
  const { snapshot } = await client.deleteSnapshot({ snapshot: name });
  emit(options, snapshot === undefined ? { status: "deleted" } : snapshotJson(snapshot), () =>
    process.stdout.write(`deleted snapshot ${name}\n`),
  );
}
