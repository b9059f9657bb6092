import { imageJson } from "@bhatti/proto/rest-json";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { sandboxClient } from "../sandbox-client.js";

/** `bhatti image list`. */
export async function runImageList(options: GlobalOptions): Promise<void> {
  const { images } = await sandboxClient(options, 30_000).client.listImages({});
  const rows = images.map(imageJson);
  emit(options, rows, () =>
    printTable(
      ["NAME", "DEFAULT", "SIZE", "BUILT", "DESCRIPTION"],
      rows.map((r) => [
        r.name,
        r.is_default ? "yes" : "",
        `${Math.round(r.size_bytes / 1024 / 1024)}MB`,
        r.built_at.slice(0, 10),
        r.description,
      ]),
    ),
  );
}
