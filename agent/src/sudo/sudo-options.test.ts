import { describe, expect, it } from "vitest";
import { SudoUsageError, parseSudoArgs, type SudoRun } from "./sudo-options.js";

function runOf(argv: string[]): SudoRun {
  const parsed = parseSudoArgs(argv);
  if (parsed.kind !== "run") throw new Error(`expected run, got ${parsed.kind}`);
  return parsed.run;
}

function usageError(argv: string[]): SudoUsageError {
  try {
    parseSudoArgs(argv);
  } catch (err) {
    if (err instanceof SudoUsageError) return err;
    throw err;
  }
  throw new Error(`no usage error for ${argv.join(" ")}`);
}

describe("sudo argument parsing", () => {
  it("stops at the first non-option: the command's own flags stay the command's", () => {
    expect(runOf(["-n", "ls", "-la", "-u", "x"]).command).toEqual(["ls", "-la", "-u", "x"]);
    expect(runOf(["--", "-weird-name", "-n"]).command).toEqual(["-weird-name", "-n"]);
  });

  it("accepts bundled short options, attached and separate values, and long forms", () => {
    const r = runOf(["-nEH", "-u0", "-D", "/tmp", "--user=root", "-g", "#0", "--non-interactive", "id"]);
    expect(r).toMatchObject({ preserveEnv: true, setHome: true, chdir: "/tmp", command: ["id"] });
    expect(runOf(["-u", "root", "--chdir=/srv", "pwd"]).chdir).toBe("/srv");
    expect(runOf(["-iu", "root"])).toMatchObject({ login: true, command: [] });
  });

  it("reads --preserve-env lists and VAR=value words before the command", () => {
    const r = runOf(["--preserve-env=FOO,BAR", "--preserve-env=BAZ", "A=1", "B=x=y", "env", "C=3"]);
    expect(r.preserveEnv).toEqual(["FOO", "BAR", "BAZ"]);
    expect(r.assignments).toEqual({ A: "1", B: "x=y" });
    expect(r.command).toEqual(["env", "C=3"]);
    expect(runOf(["--preserve-env", "true"]).preserveEnv).toBe(true);
  });

  it("-i and -s run a shell, with or without a command; they exclude each other", () => {
    expect(runOf(["-i"])).toMatchObject({ login: true, shell: false, command: [] });
    expect(runOf(["-s", "echo", "hi"])).toMatchObject({ shell: true, command: ["echo", "hi"] });
    expect(usageError(["-i", "-s"]).message).toContain("-i and -s");
  });

  it("-v, -k, -K, -l, -V and -h are modes of their own", () => {
    expect(parseSudoArgs(["-v"])).toEqual({ kind: "validate" });
    expect(parseSudoArgs(["-nv"])).toEqual({ kind: "validate" });
    expect(parseSudoArgs(["-k"])).toEqual({ kind: "reset" });
    expect(parseSudoArgs(["-K"])).toEqual({ kind: "reset" });
    expect(parseSudoArgs(["-l"])).toEqual({ kind: "list", command: [] });
    expect(parseSudoArgs(["-l", "apt-get"])).toEqual({ kind: "list", command: ["apt-get"] });
    expect(parseSudoArgs(["-V"])).toEqual({ kind: "version" });
    expect(parseSudoArgs(["--help"])).toEqual({ kind: "help" });
    // -k with a command runs it.
    expect(runOf(["-k", "true"]).command).toEqual(["true"]);
    expect(usageError(["-v", "true"]).message).toContain("-v option may not be used with a command");
    expect(usageError(["-l", "-v"]).message).toContain("Only one of");
  });

  it("refuses any user or group but root with a clear message", () => {
    for (const ok of ["root", "0", "#0"]) expect(runOf(["-u", ok, "id"]).command).toEqual(["id"]);
    const err = usageError(["-u", "nobody", "true"]);
    expect(err.message).toBe(
      'running commands as "nobody" is not supported in this sandbox: only root (-u root) is available',
    );
    expect(err.showUsage).toBe(false);
    expect(usageError(["-g", "staff", "true"]).message).toContain('group "staff"');
  });

  it("rejects what it cannot do, and unknown options, instead of ignoring them", () => {
    expect(usageError([]).message).toBe("a command is required");
    expect(usageError(["-b", "sleep", "1"]).message).toContain("-b (run in the background) is not supported");
    expect(usageError(["-e", "/etc/hosts"]).message).toContain("sudoedit");
    expect(usageError(["-x", "true"]).message).toBe("invalid option -- 'x'");
    expect(usageError(["--frobnicate"]).message).toBe("unrecognized option '--frobnicate'");
    expect(usageError(["-u"]).message).toBe("option requires an argument -- 'u'");
  });

  it("ignores options that only matter with passwords (-S, -A, -p PROMPT, -P, -B)", () => {
    expect(runOf(["-S", "-A", "-p", "Password:", "-P", "-B", "id"]).command).toEqual(["id"]);
  });
});
