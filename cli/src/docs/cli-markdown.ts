import type { Argument, Command, Help, Option } from "commander";
import { createProgram } from "../cli-program.js";
import { defineCommands } from "../command-table.js";
import { commandExamples } from "./command-examples.js";

// docs/cli.md, rendered from the commander definitions themselves: every visible command, its
// arguments and flags (with defaults) and its examples (./command-examples.ts). `npm run docs:cli`
// writes it; test/docs/cli-doc.test.ts fails when the committed file differs.

/** `bhatti image list`: the path a command is invoked by (without aliases). */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Every command below `program` that `--help` would show, depth first, in definition order. */
export function visibleCommands(program: Command): Command[] {
  const help = program.createHelp();
  const out: Command[] = [];
  const walk = (cmd: Command): void => {
    for (const sub of help.visibleCommands(cmd)) {
      if (sub.name() === "help") continue;
      out.push(sub);
      walk(sub);
    }
  };
  walk(program);
  return out;
}

/** The program with every command defined, as help sees it. */
export async function fullProgram(): Promise<Command> {
  const program = createProgram();
  await defineCommands(program, undefined);
  return program;
}

const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n+/g, " ");
/** Descriptions are plain text: `<name>` must not become an HTML tag. */
const prose = (text: string): string => text.replace(/</g, "&lt;").replace(/>/g, "&gt;");

function defaultOf(value: unknown): string {
  if (value === undefined) return "";
  return `\`${JSON.stringify(value)}\``;
}

function argumentRows(args: readonly Argument[]): string[] {
  if (args.length === 0) return [];
  const rows = args.map((a) => {
    const name = `${a.required ? "<" : "["}${a.name()}${a.variadic ? "..." : ""}${a.required ? ">" : "]"}`;
    const description = a.description === "" ? "" : cell(prose(a.description));
    return `| \`${name}\` | ${a.required ? "yes" : "no"} | ${description} | ${defaultOf(a.defaultValue)} |`;
  });
  return ["| Argument | Required | Description | Default |", "| --- | --- | --- | --- |", ...rows, ""];
}

function optionRows(options: readonly Option[]): string[] {
  const shown = options.filter((o) => o.long !== "--help");
  if (shown.length === 0) return [];
  const rows = shown.map((o) => {
    const required = o.mandatory ? " (required)" : "";
    return `| \`${cell(o.flags)}\` | ${cell(prose(o.description))}${required} | ${defaultOf(o.defaultValue)} |`;
  });
  return ["| Flag | Description | Default |", "| --- | --- | --- |", ...rows, ""];
}

function commandSection(cmd: Command, help: Help): string[] {
  const path = commandPath(cmd);
  const depth = path.split(" ").length; // "bhatti x" → 2
  const lines = [`${"#".repeat(Math.min(depth + 1, 4))} \`${path}\``, ""];
  const aliases = cmd.aliases();
  if (aliases.length > 0) lines.push(`Alias: ${aliases.map((a) => `\`${a}\``).join(", ")}`, "");
  lines.push(prose(cmd.description()), "");
  const subs = help.visibleCommands(cmd).filter((c) => c.name() !== "help");
  if (subs.length > 0) {
    lines.push(
      "Subcommands:",
      "",
      ...subs.map((s) => `- \`${commandPath(s)}\`: ${prose(s.description())}`),
      "",
    );
    return lines;
  }
  lines.push("```", `${path} ${cmd.usage()}`, "```", "");
  lines.push(...argumentRows(cmd.registeredArguments));
  lines.push(...optionRows(help.visibleOptions(cmd)));
  const examples = commandExamples[path.replace(/^bhatti /, "")];
  if (examples !== undefined && examples.length > 0) {
    lines.push("Example:", "", "```sh", ...examples, "```", "");
  }
  return lines;
}

/** Commands without an example in ./command-examples.ts (the drift test requires none). */
export function commandsWithoutExamples(program: Command): string[] {
  const help = program.createHelp();
  return visibleCommands(program)
    .filter((c) => help.visibleCommands(c).filter((s) => s.name() !== "help").length === 0)
    .map((c) => commandPath(c).replace(/^bhatti /, ""))
    .filter((path) => (commandExamples[path]?.length ?? 0) === 0);
}

/** The Markdown of docs/cli.md. */
export function renderCliReference(program: Command): string {
  const help = program.createHelp();
  const commands = visibleCommands(program);
  const lines = [
    "# CLI reference",
    "",
    "<!-- Generated from the commander definitions by `npm run docs:cli` (cli/src/docs/cli-markdown.ts). Do not edit. -->",
    "",
    prose(program.description()),
    "",
    "## Global flags",
    "",
    "Accepted by every command, anywhere on the command line.",
    "",
    ...optionRows(help.visibleOptions(program)),
    "A command exits 0 on success and 1 on any error (the message is on stderr, with a `hint:` line when there is one).",
    "",
    "## Commands",
    "",
    ...commands.map((c) => {
      const indent = "  ".repeat(commandPath(c).split(" ").length - 2);
      return `${indent}- [\`${commandPath(c)}\`](#${anchor(commandPath(c))}): ${prose(c.description())}`;
    }),
    "",
    ...commands.flatMap((c) => commandSection(c, help)),
  ];
  return `${lines.join("\n").trimEnd()}\n`;
}

/** GitHub's heading anchor for `` `bhatti image list` ``. */
function anchor(path: string): string {
  return path
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, "")
    .replace(/ /g, "-");
}
