import { chmodSync, rmSync } from "node:fs";
import { type Server, connect, createServer } from "node:net";
import { join } from "node:path";
import { CliError } from "../cli-error.js";

/**
 * One `bhatti serve` per socket dir. The lock is a Unix socket that answers with the owner's
 * pid: a live owner keeps it answering, a killed one leaves only a file, which is reclaimed.
 */
export interface SupervisorLock {
  readonly path: string;
  release(): Promise<void>;
}

export function supervisorLockPath(socketDir: string): string {
  return join(socketDir, "supervisor.sock");
}

/** The pid of the live owner of the lock socket, or undefined if nobody answers. */
function askOwner(path: string, timeoutMs = 1_000): Promise<number | undefined | "unknown"> {
  return new Promise((resolve) => {
    const sock = connect(path);
    let data = "";
    const done = (v: number | undefined | "unknown") => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done("unknown"));
    sock.on("data", (chunk) => {
      data += chunk.toString("utf8");
    });
    sock.on("end", () => {
      const pid = Number(data.trim());
      done(Number.isInteger(pid) && pid > 0 ? pid : "unknown");
    });
    sock.on("error", () => done(undefined));
  });
}

export async function acquireSupervisorLock(socketDir: string): Promise<SupervisorLock> {
  const path = supervisorLockPath(socketDir);
  const owner = await askOwner(path);
  if (owner !== undefined) {
    const who = owner === "unknown" ? "another process" : `another bhatti serve (pid ${owner})`;
    throw new CliError(
      `${who} is already running with socket dir ${socketDir}`,
      "stop it first, or give this one another --socket-dir",
    );
  }
  rmSync(path, { force: true });
  const server: Server = createServer((sock) => sock.end(`${process.pid}\n`));
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    throw new CliError(`cannot create ${path}: ${(e as Error).message}`);
  } finally {
    process.umask(previousUmask);
  }
  chmodSync(path, 0o600);
  server.unref();
  return {
    path,
    release: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}
