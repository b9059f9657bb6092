import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti image list|pull|import|save|delete|share|unshare|task`. */
export function registerImageCommands(program: Command): void {
  const image = commandGroup(program, "image", "root filesystem images");
  image
    .command("list")
    .alias("ls")
    .description("list the images you can create sandboxes from (yours, shared with you, system)")
    .action(async (_opts: unknown, command: Command) => {
      const { runImageList } = await import("./image-action.js");
      await runImageList(globalOptionsOf(command));
    });
  image
    .command("pull <ref>")
    .description("pull an image from an OCI/Docker registry (waits; progress on stderr)")
    .option("--name <name>", "the image's name here (default: from the reference)")
    .option("--auth <user:token>", "registry credentials")
    .option("--authfile <file>", "registry credentials from a Docker config.json")
    .option("--platform <os/arch>", "platform to pull from a multi-platform image (default: the server's)")
    .option("--insecure", "allow plain HTTP to a registry that is not on a loopback address")
    .action(
      async (
        ref: string,
        opts: { name?: string; auth?: string; authfile?: string; platform?: string; insecure?: boolean },
        command: Command,
      ) => {
        const { runImagePull } = await import("./image-task-action.js");
        await runImagePull(globalOptionsOf(command), ref, opts);
      },
    );
  image
    .command("import [tar]")
    .description("import a docker-archive or oci-archive tar (uploaded to the server)")
    .option("--name <name>", "the image's name (default: from the file or image name)")
    .option("--from-docker <image>", "run `docker save IMAGE` and import the result")
    .option("--server-path", "the tar is a path on the server, read there (admin)")
    .action(
      async (
        tar: string | undefined,
        opts: { name?: string; fromDocker?: string; serverPath?: boolean },
        command: Command,
      ) => {
        const { runImageImport } = await import("./image-task-action.js");
        await runImageImport(globalOptionsOf(command), tar, opts);
      },
    );
  image
    .command("save <sandbox> <name>")
    .description("save a running sandbox's filesystem as a new image (it keeps running)")
    .action(async (sandbox: string, name: string, _opts: unknown, command: Command) => {
      const { runImageSave } = await import("./image-task-action.js");
      await runImageSave(globalOptionsOf(command), sandbox, name);
    });
  image
    .command("delete <name>")
    .alias("rm")
    .description("delete one of your images (refused while a sandbox uses it)")
    .action(async (name: string, _opts: unknown, command: Command) => {
      const { runImageDelete } = await import("./image-task-action.js");
      await runImageDelete(globalOptionsOf(command), name);
    });
  for (const [verb, unshare] of [
    ["share", false],
    ["unshare", true],
  ] as const) {
    image
      .command(`${verb} <name>`)
      .description(
        unshare
          ? "stop sharing one of your images"
          : "let another user create sandboxes from one of your images",
      )
      .requiredOption("--user <user>", "the user's id (admins may give a name)")
      .action(async (name: string, opts: { user: string }, command: Command) => {
        const { runImageShare } = await import("./image-task-action.js");
        await runImageShare(globalOptionsOf(command), name, opts.user, unshare);
      });
  }
  image
    .command("task <id>")
    .description("show an image task (pull, import, save)")
    .action(async (id: string, _opts: unknown, command: Command) => {
      const { runTaskShow } = await import("./image-task-action.js");
      await runTaskShow(globalOptionsOf(command), id);
    });
}
