// Command-line parsing of the sudo shim: the part of sudo(8)'s syntax people actually use,
// parsed the way sudo does (options stop at the first non-option, short options bundle,
// `-uroot` and `--user=root` work, `VAR=value` words before the command set variables).

/** What one invocation asks for. */
export type SudoInvocation =
  | { kind: "run"; run: SudoRun }
  | { kind: "validate" }
  | { kind: "reset" }
  | { kind: "list"; command: string[] }
  | { kind: "help" }
  | { kind: "version" };

export interface SudoRun {
  /** The command and its arguments; empty with `shell` set = an interactive shell. */
  command: string[];
  /** -i: a login shell of root (runs the command through it), cwd = root's home. */
  login: boolean;
  /** -s: the caller's $SHELL (runs the command through it). */
  shell: boolean;
  /** -E / --preserve-env: keep the caller's environment (true), or only the listed names. */
  preserveEnv: boolean | string[];
  /** -H: HOME=/root even when the environment is preserved. */
  setHome: boolean;
  /** -D: the working directory. */
  chdir: string | undefined;
  /** `VAR=value` words between the options and the command. */
  assignments: Record<string, string>;
}

/** A usage error: sudo prints it (with the usage line when `showUsage`) and exits 1. */
export class SudoUsageError extends Error {
  override readonly name = "SudoUsageError";
  constructor(
    message: string,
    readonly showUsage = false,
  ) {
    super(message);
  }
}

export const SUDO_USAGE = `usage: sudo -h | -K | -k | -V
usage: sudo -v [-n]
usage: sudo -l [-n] [command]
usage: sudo [-EHkn] [-D directory] [-u root] [VAR=value] [-i | -s] [command [arg ...]]`;

/** The only user (and group) commands can run as here: root, by name, number or #number. */
export function isRootSpec(spec: string): boolean {
  return spec === "root" || spec === "0" || spec === "#0";
}

type Mode = "run" | "validate" | "reset" | "remove" | "list" | "help" | "version";

/** Options that take a value, by short letter; long names map to the same letters. */
const VALUE_OPTIONS = new Set(["u", "g", "D", "p", "C", "U", "T", "R", "r", "t"]);
const LONG_OPTIONS: Record<string, string> = {
  askpass: "A",
  background: "b",
  bell: "B",
  "close-from": "C",
  chdir: "D",
  edit: "e",
  group: "g",
  "set-home": "H",
  help: "h",
  login: "i",
  "remove-timestamp": "K",
  "reset-timestamp": "k",
  list: "l",
  "non-interactive": "n",
  "preserve-groups": "P",
  prompt: "p",
  chroot: "R",
  role: "r",
  stdin: "S",
  shell: "s",
  type: "t",
  "command-timeout": "T",
  "other-user": "U",
  user: "u",
  version: "V",
  validate: "v",
};
/** Accepted and without effect here (no password, no prompt, no askpass, no timestamps). */
const IGNORED = new Set(["A", "B", "n", "N", "P", "S", "p", "C", "U"]);
const UNSUPPORTED: Record<string, string> = {
  b: "-b (run in the background)",
  e: "-e / sudoedit",
  R: "-R (chroot)",
  r: "-r (SELinux role)",
  t: "-t (SELinux type)",
  T: "-T (command timeout)",
};

export function parseSudoArgs(argv: readonly string[]): SudoInvocation {
  const run: SudoRun = {
    command: [],
    login: false,
    shell: false,
    preserveEnv: false,
    setHome: false,
    chdir: undefined,
    assignments: {},
  };
  // Mutated from the closures below, so kept in an object TS does not narrow.
  const state: { mode: Mode; resetTimestamp: boolean } = { mode: "run", resetTimestamp: false };
  const setMode = (next: Mode) => {
    if (state.mode !== "run" && state.mode !== next) {
      throw new SudoUsageError(
        "Only one of the -e, -h, -i, -K, -l, -s, -v or -V options may be specified",
        true,
      );
    }
    state.mode = next;
  };
  const apply = (letter: string, value: string | undefined) => {
    if (IGNORED.has(letter)) return;
    const unsupported = UNSUPPORTED[letter];
    if (unsupported !== undefined)
      throw new SudoUsageError(`${unsupported} is not supported in this sandbox`);
    switch (letter) {
      case "u":
        if (!isRootSpec(value!)) {
          throw new SudoUsageError(
            `running commands as "${value}" is not supported in this sandbox: only root (-u root) is available`,
          );
        }
        return;
      case "g":
        if (!isRootSpec(value!)) {
          throw new SudoUsageError(
            `running commands with group "${value}" is not supported in this sandbox: only root (-g root) is available`,
          );
        }
        return;
      case "D":
        run.chdir = value!;
        return;
      case "E":
        if (value === undefined) run.preserveEnv = true;
        else if (run.preserveEnv !== true) {
          const names = value.split(",").filter((n) => n !== "");
          run.preserveEnv = [...(run.preserveEnv === false ? [] : run.preserveEnv), ...names];
        }
        return;
      case "H":
        run.setHome = true;
        return;
      case "i":
        if (run.shell) throw new SudoUsageError("you may not specify both the -i and -s options", true);
        run.login = true;
        return;
      case "s":
        if (run.login) throw new SudoUsageError("you may not specify both the -i and -s options", true);
        run.shell = true;
        return;
      case "k":
        state.resetTimestamp = true;
        return;
      case "K":
        return setMode("remove");
      case "l":
        return setMode("list");
      case "v":
        return setMode("validate");
      case "V":
        return setMode("version");
      case "h":
        return setMode("help");
      default:
        throw new SudoUsageError(`invalid option -- '${letter}'`, true);
    }
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq > 0 ? eq : undefined);
      const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
      if (name === "preserve-env") {
        apply("E", inline);
        continue;
      }
      const letter = LONG_OPTIONS[name];
      if (letter === undefined) throw new SudoUsageError(`unrecognized option '${arg}'`, true);
      if (VALUE_OPTIONS.has(letter)) {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new SudoUsageError(`option '--${name}' requires an argument`, true);
        apply(letter, value);
      } else {
        if (inline !== undefined)
          throw new SudoUsageError(`option '--${name}' doesn't allow an argument`, true);
        apply(letter, undefined);
      }
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    // A bundle of short options: -nE, -u0, -iu root.
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      if (VALUE_OPTIONS.has(letter)) {
        const rest = arg.slice(j + 1);
        const value = rest !== "" ? rest : argv[++i];
        if (value === undefined) throw new SudoUsageError(`option requires an argument -- '${letter}'`, true);
        apply(letter, value);
        break;
      }
      apply(letter, undefined);
    }
  }
  // VAR=value words, then the command.
  for (; i < argv.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(argv[i]!); i++) {
    const word = argv[i]!;
    const eq = word.indexOf("=");
    run.assignments[word.slice(0, eq)] = word.slice(eq + 1);
  }
  run.command = argv.slice(i);

  switch (state.mode) {
    case "help":
      return { kind: "help" };
    case "version":
      return { kind: "version" };
    case "remove":
      if (run.command.length > 0)
        throw new SudoUsageError("the -K option may not be used with a command", true);
      return { kind: "reset" };
    case "validate":
      if (run.command.length > 0)
        throw new SudoUsageError("the -v option may not be used with a command", true);
      return { kind: "validate" };
    case "list":
      return { kind: "list", command: run.command };
    default:
      if (run.command.length === 0 && !run.login && !run.shell) {
        if (state.resetTimestamp) return { kind: "reset" };
        throw new SudoUsageError("a command is required", true);
      }
      return { kind: "run", run };
  }
}
