// The built `bhatti` (cli/dist/bhatti.mjs, as installed) defines only the command it runs; help
// and unknown commands must still see every command. No server needed: nothing here calls one.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandTable } from "./command-table.js";
import { invokedCommand } from "./invoked-command.js";

const bhatti = fileURLToPath(new URL("../dist/bhatti.mjs", import.meta.url));

/** Every top-level command as `bhatti --help` lists it, in order (name|alias). */
const helpCommands = [
  "version",
  "update",
  "serve",
  "admin",
  "create",
  "list|ls",
  "inspect|info",
  "edit",
  "stop",
  "start",
  "destroy|rm",
  "ps",
  "exec",
  "shell|sh",
  "file",
  "image",
  "setup",
  "completion",
  "user",
  "secret",
  "snapshot",
  "volume",
  "forward",
  "share",
  "publish",
  "unpublish",
  "help",
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("bhatti help and unknown commands (the built CLI)", () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), "bhatti-test-clihelp-"));
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  const cli = (...args: string[]): Promise<Run> =>
    new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [bhatti, ...args],
        {
          // A gateway URL nothing listens on: were a command to call out, it would fail loudly.
          env: {
            ...process.env,
            HOME: home,
            XDG_CACHE_HOME: join(home, ".cache"),
            BHATTI_URL: "http://127.0.0.1:9",
          },
          timeout: 60_000,
        },
        (err, stdout, stderr) => {
          if (err !== null && typeof err.code !== "number") reject(err);
          else resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
        },
      );
    });

  /** The command names of a help text's "Commands:" section, in order. */
  const listed = (help: string): string[] =>
    (help.split("Commands:\n")[1] ?? "")
      .split("\n")
      .filter((l) => l.startsWith("  "))
      .map((l) => l.trim().split(" ")[0] as string);

  it("bhatti --help, -h, help and no arguments list every command, in the same text", async () => {
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(listed(help.stdout)).toEqual(helpCommands);
    expect(help.stdout).toContain("list|ls [options]                      list your sandboxes\n");
    for (const args of [["-h"], ["help"], ["--json", "--help"]]) {
      const other = await cli(...args);
      expect(other.code, args.join(" ")).toBe(0);
      expect(other.stdout, args.join(" ")).toBe(help.stdout);
    }
    // No command: commander prints the same help on stderr and fails.
    const none = await cli();
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(help.stdout);
  });

  it("every command in the table is one `bhatti --help` lists (and the other way round)", async () => {
    const names = new Set(listed((await cli("--help")).stdout).flatMap((c) => c.split("|")));
    const tableNames = commandTable.flatMap((e) => e.names).filter((n) => !n.startsWith("__"));
    for (const n of tableNames) expect(names, n).toContain(n);
    for (const n of names) if (n !== "help") expect(tableNames, n).toContain(n);
  });

  it("bhatti help CMD (every command defined) says what bhatti CMD --help (only CMD defined) says", async () => {
    for (const command of helpCommands.filter((c) => c !== "help").map((c) => c.split("|")[0] as string)) {
      const viaHelp = await cli("help", command);
      const own = await cli(command, "--help");
      expect(viaHelp.code, command).toBe(0);
      expect(viaHelp.stdout, command).toMatch(new RegExp(`^Usage: bhatti ${command}[ |]`));
      expect(own.code, command).toBe(0);
      expect(own.stdout, command).toBe(viaHelp.stdout);
    }
    // The aliases reach the hot bundles too.
    expect((await cli("ls", "--help")).stdout).toBe((await cli("help", "list")).stdout);
  });

  it("an unknown command fails with exit code 1, names it and suggests the nearest", async () => {
    const unknown = await cli("nope");
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr.split("\n")[0]).toBe("error: unknown command 'nope'");
    // commander shows the help after the error: it lists every command, so all are defined.
    expect(listed(unknown.stderr)).toEqual(helpCommands);

    const typo = await cli("--json", "lst");
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain("error: unknown command 'lst'\n(Did you mean one of list, ls?)");

    // commander's `help NAME` for no such command: the program's help, as a failure.
    const unknownHelp = await cli("help", "nope");
    expect(unknownHelp.code).toBe(1);
    expect(listed(unknownHelp.stderr)).toEqual(helpCommands);
  });

  it("the completion script still offers every command", async () => {
    const script = await cli("completion", "bash");
    expect(script.code).toBe(0);
    for (const c of helpCommands.filter((c) => c !== "help").flatMap((c) => c.split("|"))) {
      expect(script.stdout, c).toMatch(new RegExp(`[ "]${c}[ "]`));
    }
  });
});

describe("invokedCommand", () => {
  it("is the first word that is not a global option or its value", () => {
    expect(invokedCommand(["list"])).toBe("list");
    expect(invokedCommand(["--json", "ls", "--label", "a=b"])).toBe("ls");
    expect(invokedCommand(["--url", "http://x", "--token", "k", "exec", "s", "--", "true"])).toBe("exec");
    expect(invokedCommand(["--url=http://x", "inspect", "s"])).toBe("inspect");
    expect(invokedCommand(["help", "list"])).toBe("help");
  });
  it("is undefined for help asked before a command, and for none", () => {
    expect(invokedCommand([])).toBeUndefined();
    expect(invokedCommand(["--help", "list"])).toBeUndefined();
    expect(invokedCommand(["-h"])).toBeUndefined();
    expect(invokedCommand(["--json"])).toBeUndefined();
    expect(invokedCommand(["--", "list"])).toBeUndefined();
  });
});
