// `sudo` for bhatti sandboxes. gVisor ignores setuid bits and user processes carry
// no_new_privs, so the image's sudo cannot become root; the sandbox's promise (the only user
// has passwordless sudo) is kept by the agent instead, over its local sudo socket. This is
// bundled as /.bhatti/sudo.mjs and started by /.bhatti/bin/sudo, which the engine mounts
// over /usr/bin/sudo.
import { statSync } from "node:fs";
import { hostname } from "node:os";
import { DEFAULT_SUDO_SOCKET } from "@bhatti/agent-protocol";
import { findExecutable } from "../exec/command-spec.js";
import { findPasswdEntry } from "../identity.js";
import { runLocally } from "./sudo-local.js";
import { SUDO_USAGE, SudoUsageError, parseSudoArgs, type SudoInvocation } from "./sudo-options.js";
import { SudoAgentError, SudoUnavailableError, relayThroughAgent } from "./sudo-relay.js";
import { buildSudoCommand, withSecurePath, type SudoCaller, type SudoTarget } from "./sudo-request.js";

/** Overridable so tests (and unusual layouts) can point the shim at another socket. */
const socketPath = process.env["BHATTI_SUDO_SOCKET"] || DEFAULT_SUDO_SOCKET;

function callerEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  // The wrapper moves NODE_OPTIONS aside so it cannot affect this Node; the command gets it back.
  const saved = env["BHATTI_SUDO_NODE_OPTIONS"];
  delete env["BHATTI_SUDO_NODE_OPTIONS"];
  if (saved !== undefined) env["NODE_OPTIONS"] = saved;
  return env;
}

function currentCaller(): SudoCaller {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let cwd: string;
  try {
    cwd = process.cwd();
  } catch {
    cwd = "/";
  }
  const env = callerEnv();
  const name = findPasswdEntry({ uid })?.name ?? env["USER"] ?? String(uid);
  return { name, uid, gid, cwd, env };
}

function rootTarget(): SudoTarget {
  const root = findPasswdEntry({ uid: 0 });
  return { name: root?.name ?? "root", home: root?.home ?? "/root", shell: root?.shell ?? "/bin/sh" };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function serviceAvailable(): boolean {
  try {
    return statSync(socketPath).isSocket();
  } catch {
    return false;
  }
}

/** Agent errors in sudo's own words where sudo has some. */
function describeAgentError(text: string): string {
  const notFound = /^start: exec: "(.*)": executable file not found in \$PATH$/.exec(text);
  if (notFound !== null) return `${notFound[1]}: command not found`;
  const noFile = /^start: fork\/exec (.*): no such file or directory$/.exec(text);
  if (noFile !== null) return `${noFile[1]}: command not found`;
  const noDir = /^start: chdir (.*): no such file or directory$/.exec(text);
  if (noDir !== null) return `unable to change directory to ${noDir[1]}: No such file or directory`;
  return text;
}

async function execute(invocation: SudoInvocation, caller: SudoCaller): Promise<number> {
  const print = (text: string) => process.stdout.write(`${text}\n`);
  const isRoot = caller.uid === 0;
  switch (invocation.kind) {
    case "help":
      print(`sudo - run a command as root in this bhatti sandbox\n\n${SUDO_USAGE}`);
      return 0;
    case "version":
      print("Sudo version 1.9 compatible (bhatti sudo shim: commands run as root through the guest agent)");
      return 0;
    case "reset":
      return 0;
    case "validate":
      if (!isRoot && !serviceAvailable())
        throw new SudoUnavailableError("bhatti sudo service is not available in this sandbox");
      return 0;
    case "list": {
      if (!isRoot && !serviceAvailable())
        throw new SudoUnavailableError("bhatti sudo service is not available in this sandbox");
      if (invocation.command.length === 0) {
        print(
          `User ${caller.name} may run all commands as root on ${hostname()} without a password: (ALL : ALL) NOPASSWD: ALL`,
        );
        return 0;
      }
      const file = invocation.command[0]!;
      const found = findExecutable(file, withSecurePath(caller.env["PATH"]), caller.cwd);
      if (found === undefined) return 1;
      print([found, ...invocation.command.slice(1)].join(" "));
      return 0;
    }
    case "run": {
      const target = rootTarget();
      if (invocation.run.login && invocation.run.chdir === undefined && !isDirectory(target.home)) {
        // sudo warns and carries on where the caller is.
        process.stderr.write(
          `sudo: unable to change directory to ${target.home}: No such file or directory\n`,
        );
        invocation.run.chdir = caller.cwd;
      }
      const command = buildSudoCommand(invocation.run, caller, target);
      if (isRoot) return runLocally(command);
      const tty = process.stdin.isTTY === true && process.stdout.isTTY === true;
      return relayThroughAgent(socketPath, command, tty);
    }
  }
}

/** Flushes stdout and stderr, then exits: output written just before must not be lost. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
  setTimeout(() => process.exit(code), 2_000).unref();
}

async function main(): Promise<void> {
  let code: number;
  try {
    const invocation = parseSudoArgs(process.argv.slice(2));
    code = await execute(invocation, currentCaller());
  } catch (err) {
    if (err instanceof SudoUsageError) {
      process.stderr.write(`sudo: ${err.message}\n${err.showUsage ? `${SUDO_USAGE}\n` : ""}`);
    } else if (err instanceof SudoAgentError) {
      process.stderr.write(`sudo: ${describeAgentError(err.message)}\n`);
    } else if (err instanceof SudoUnavailableError) {
      process.stderr.write(`sudo: ${err.message}\n`);
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(
        `sudo: ${e.code === "ENOENT" ? `${e.path ?? "command"}: command not found` : e.message}\n`,
      );
    }
    code = 1;
  }
  exitAfterFlush(code);
}

void main();
