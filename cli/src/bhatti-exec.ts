import { runCli } from "./cli-program.js";
import { registerExecCommand } from "./commands/exec-command.js";

// `bhatti exec`, built as one file with everything it runs (no chunks to resolve, no command
// table). The launcher sends only `exec` here.
await runCli(process.argv, registerExecCommand);
