import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti forward NAME [PORT]`: a port on the server relayed to a port in the sandbox. */
export function registerForwardCommand(program: Command): void {
  program
    .command("forward")
    .description(
      "forward a port on the server (loopback by default) to a port in the sandbox; without PORT, list the forwards",
    )
    .argument("<sandbox>", "name or id")
    .argument("[port]", "port inside the sandbox")
    .option("--host-port <n>", "port to listen on (default: any free port)")
    .option("--close", "close the forward of PORT instead")
    .action(
      async (
        sandbox: string,
        port: string | undefined,
        opts: { hostPort?: string; close?: boolean },
        command: Command,
      ) => {
        const { runForward } = await import("./forward-action.js");
        await runForward(globalOptionsOf(command), sandbox, port, opts);
      },
    );
}
