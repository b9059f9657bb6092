import { VolumeService } from "@bhatti/proto/v1/volume_pb";
import type { Volume } from "@bhatti/proto/v1/volume_pb";
import { volumeJson } from "@bhatti/proto/rest-json";
import { parseSizeMb } from "@bhatti/proto/vocabulary";
import { CliError } from "../cli-error.js";
import { confirmDestructive } from "../confirm-destructive.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";

function sizeMb(text: string): number {
  const mb = parseSizeMb(text);
  if (mb === undefined)
    throw new CliError(
      `--size ${text} is not a size`,
      "use a whole number of MiB or a size such as 512M, 1G, 10G",
    );
  return mb;
}

function sizeText(mb: number): string {
  return mb % 1024 === 0 ? `${mb / 1024}G` : `${mb}M`;
}

function mountsText(v: Volume): string {
  return v.attachments.map((a) => `${a.sandboxId}:${a.mount}${a.readOnly ? ":ro" : ""}`).join(",") || "-";
}

export async function runVolumeCreate(options: GlobalOptions, name: string, size: string): Promise<void> {
  const { client } = createGatewayClient(VolumeService, options);
  const { volume } = await client.createVolume({ name, sizeMb: sizeMb(size) });
  if (volume === undefined) throw new CliError("the server returned no volume");
  emit(options, volumeJson(volume), () =>
    process.stdout.write(`created volume ${volume.name} (${sizeText(volume.sizeMb)})\n`),
  );
}

export async function runVolumeList(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(VolumeService, options);
  const { volumes } = await client.listVolumes({});
  emit(options, volumes.map(volumeJson), () =>
    printTable(
      ["NAME", "SIZE", "STATUS", "MOUNTED IN"],
      volumes.map((v) => [v.name, sizeText(v.sizeMb), v.status, mountsText(v)]),
    ),
  );
}

export async function runVolumeResize(options: GlobalOptions, name: string, size: string): Promise<void> {
  const { client } = createGatewayClient(VolumeService, options);
  const { volume } = await client.resizeVolume({ volume: name, sizeMb: sizeMb(size) });
  if (volume === undefined) throw new CliError("the server returned no volume");
  emit(options, volumeJson(volume), () =>
    process.stdout.write(`resized volume ${volume.name} to ${sizeText(volume.sizeMb)}\n`),
  );
}

export async function runVolumeDelete(options: GlobalOptions, name: string, yes: boolean): Promise<void> {
  await confirmDestructive(`Delete volume ${name} and all its data?`, yes);
  const { client } = createGatewayClient(VolumeService, options);
  await client.deleteVolume({ volume: name });
  emit(options, { status: "deleted" }, () => process.stdout.write(`deleted volume ${name}\n`));
}
