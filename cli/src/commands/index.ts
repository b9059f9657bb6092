import type { Command } from "commander";
import { registerAdminStatusCommand } from "./admin-status.js";
import { registerServeCommand } from "./serve.js";
import { registerVersionCommand } from "./version.js";

/**
 * Every command, one line per file. A command file imports only commander types and light
 * modules at top level; Connect, generated code and the rest load inside its action.
 */
export function registerCommands(program: Command): void {
  registerVersionCommand(program);
  registerServeCommand(program);
  registerAdminStatusCommand(program);
}
