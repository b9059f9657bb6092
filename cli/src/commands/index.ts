import type { Command } from "commander";
import { registerAdminEventsCommands } from "./admin-events.js";
import { registerAdminStatusCommand } from "./admin-status.js";
import { registerSecretCommands } from "./secret.js";
import { registerServeCommand } from "./serve.js";
import { registerUserCommands } from "./user.js";
import { registerVersionCommand } from "./version.js";

/**
 * Every command, one line per file. A command file imports only commander types and light
 * modules at top level; Connect, generated code and the rest load inside its action.
 */
export function registerCommands(program: Command): void {
  registerVersionCommand(program);
  registerServeCommand(program);
  registerAdminStatusCommand(program);
  registerAdminEventsCommands(program);
  registerUserCommands(program);
  registerSecretCommands(program);
}
