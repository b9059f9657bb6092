import type { Command } from "commander";

/** `bhatti serve`: the embedded supervisor of the five processes (no systemd needed). */
export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description("run the bhatti server: store, network, vmm, thermal and the gateway")
    .argument("[config-flags...]", "--config FILE and --<key> VALUE for any server config key")
    .allowUnknownOption()
    .helpOption("-h, --help", "show help (config keys: docs/configuration.md)")
    .addHelpText(
      "after",
      "\nEvery server config key can be given as a flag, e.g. --socket-dir /run/bhatti --state-dir\n" +
        "/var/lib/bhatti --listen 127.0.0.1:8080 (see docs/configuration.md). SIGTERM or Ctrl-C stops\n" +
        "every process; a second Ctrl-C kills them.",
    )
    .action(async (configFlags: string[]) => {
      const { runServe } = await import("../serve/run-serve.js");
      await runServe(configFlags);
    });
}
