import { type Forward, ForwardService } from "@bhatti/proto/v1/share_pb";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";

/** The REST shape of a forward (`GET /sandboxes/:id/forward`), for --json. */
const forwardJson = (f: Forward) => ({
  sandbox_id: f.sandboxId,
  port: f.port,
  host_port: f.hostPort,
  address: f.address,
  created_at: f.createdAt === undefined ? "" : timestampDate(f.createdAt).toISOString(),
  connections: f.connections,
});

function portOf(raw: string, name: string, allowZero: boolean): number {
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= (allowZero ? 0 : 1) && n <= 65_535))
    throw new CliError(`${name} must be a port number (1-65535)`);
  return n;
}

export async function runForward(
  options: GlobalOptions,
  sandbox: string,
  port: string | undefined,
  opts: { hostPort?: string; close?: boolean },
): Promise<void> {
  const { client } = createGatewayClient(ForwardService, options);
  if (port === undefined) {
    if (opts.close === true || opts.hostPort !== undefined) throw new CliError("PORT is required");
    const { forwards } = await client.listForwards({ sandbox });
    const rows = forwards.map(forwardJson);
    emit(options, rows, () =>
      printTable(
        ["PORT", "ADDRESS", "CONNECTIONS", "CREATED"],
        rows.map((r) => [String(r.port), r.address, String(r.connections), r.created_at]),
      ),
    );
    return;
  }
  const p = portOf(port, "PORT", false);
  if (opts.close === true) {
    const { forward } = await client.deleteForward({ sandbox, port: p });
    emit(options, forward === undefined ? {} : forwardJson(forward), () =>
      process.stdout.write(`closed the forward of port ${p}\n`),
    );
    return;
  }
  const hostPort = opts.hostPort === undefined ? 0 : portOf(opts.hostPort, "--host-port", true);
  const { forward } = await client.createForward({ sandbox, port: p, hostPort });
  if (forward === undefined) throw new CliError("the gateway returned no forward");
  emit(options, forwardJson(forward), () =>
    process.stdout.write(`${forward.address} -> ${sandbox}:${forward.port}\n`),
  );
}
