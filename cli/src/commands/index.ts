import type { Command } from "commander";
import { registerAdminEventsCommands } from "./admin-events.js";
import { registerAdminStatusCommand } from "./admin-status.js";
import { registerCompletionCommand } from "./completion-command.js";
import { registerExecCommand } from "./exec-command.js";
import { registerFileCommands } from "./file-command.js";
import { registerImageCommands } from "./image-command.js";
import { registerSandboxCommands } from "./sandbox-commands.js";
import { registerSetupCommand } from "./setup-command.js";
import { registerShellCommand } from "./shell-command.js";
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
  registerSandboxCommands(program);
  registerExecCommand(program);
  registerShellCommand(program);
  registerFileCommands(program);
  registerImageCommands(program);
  registerSetupCommand(program);
  registerCompletionCommand(program);
  registerAdminEventsCommands(program);
  registerUserCommands(program);
  registerSecretCommands(program);
}
