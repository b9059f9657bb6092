import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti image list`. */
export function registerImageCommands(program: Command): void {
  commandGroup(program, "image", "root filesystem images")
    .command("list")
    .alias("ls")
    .description("list the images sandboxes can be created from")
    .action(async (_opts: unknown, command: Command) => {
      const [{ sandboxClient }, { emit, printTable }, { imageJson }] = await Promise.all([
        import("../sandbox-client.js"),
        import("../output.js"),
        import("@bhatti/proto/rest-json"),
      ]);
      const options = globalOptionsOf(command);
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
    });
}
