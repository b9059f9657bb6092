import { runCli } from "./cli-program.js";
import { registerListCommand } from "./commands/sandbox-list-command.js";

// `bhatti list|ls`, built as one file with everything it runs (the most-run command: no chunks
// to resolve, no command table). The launcher sends only `list`/`ls` here.
await runCli(process.argv, registerListCommand);
