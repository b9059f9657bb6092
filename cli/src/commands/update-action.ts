import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { CliError } from "../cli-error.js";
import type { GlobalOptions } from "../global-options.js";
import { emit } from "../output.js";
import {
  buildRelease,
  buildTiers,
  checkoutRelease,
  currentRelease,
  flipLink,
  previousRelease,
  pruneReleases,
  recordPrevious,
  smokeTest,
} from "./update-release.js";
import {
  type ServeProcess,
  findServeProcesses,
  restartSystemd,
  startServe,
  stopProcess,
  systemdActive,
  waitForGateway,
} from "./update-restart.js";
import { fetchRemoteHead, headOf, isAncestorOfHead, subjectOf, trackedRef } from "./update-source.js";

export interface UpdateFlags {
  rollback?: boolean;
  tiers?: string;
  link: string;
  releasesDir?: string;
  stateDir: string;
  restart: boolean;
  /** How long the restarted gateway has to answer /health before the update is undone. */
  healthTimeoutMs: number;
}

interface Restarted {
  how: "serve" | "systemd";
  pid?: number;
}

/**
 * Restarts whatever ran the old release onto the release the link points at now: the systemd
 * units, or each `bhatti serve` (stopped, then started the same way: `running` holds the pids
 * to stop, `serves` how they were started). Then waits for the gateway to answer.
 */
async function restartServices(
  options: GlobalOptions,
  serves: readonly ServeProcess[],
  running: readonly number[],
  logFile: string,
  healthTimeoutMs: number,
  log: (line: string) => void,
): Promise<{ restarted: Restarted[]; healthy: boolean }> {
  const restarted: Restarted[] = [];
  if (await systemdActive()) {
    log("restarting the systemd units (sandboxes keep running)");
    await restartSystemd();
    restarted.push({ how: "systemd" });
  }
  for (const [i, serve] of serves.entries()) {
    const pid = running[i] ?? serve.pid;
    log(`restarting bhatti serve (pid ${pid}; sandboxes keep running; output: ${logFile})`);
    await stopProcess(pid);
    restarted.push({ how: "serve", pid: startServe(serve, logFile) });
  }
  if (restarted.length === 0) {
    log("no running bhatti server found: the new release runs at the next `bhatti serve`");
    return { restarted, healthy: true };
  }
  const { resolveClientConfig } = await import("../client-config.js");
  const url = resolveClientConfig(options).url;
  log(`waiting for ${url}/health`);
  return { restarted, healthy: await waitForGateway(url, healthTimeoutMs) };
}

export async function runUpdate(options: GlobalOptions, flags: UpdateFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`update: ${line}\n`);
  if (!Number.isFinite(flags.healthTimeoutMs) || flags.healthTimeoutMs <= 0) {
    throw new CliError("--health-timeout needs a positive number of seconds");
  }
  const current = currentRelease(flags.link);
  const releasesDir = flags.releasesDir ?? `${flags.link}-releases`;
  mkdirSync(releasesDir, { recursive: true });
  const logFile = join(releasesDir, "serve.log");
  // Found before the link flips: afterwards their bundle path resolves to the new release.
  const serves = flags.restart ? findServeProcesses(current) : [];

  if (flags.rollback === true) {
    const previous = previousRelease(releasesDir);
    if (previous === undefined) throw new CliError(`no previous release recorded in ${releasesDir}`);
    flipLink(flags.link, previous);
    recordPrevious(releasesDir, current);
    log(`${flags.link} -> ${previous}`);
    const { restarted, healthy } = flags.restart
      ? await restartServices(options, serves, [], logFile, flags.healthTimeoutMs, log)
      : { restarted: [], healthy: true };
    if (!healthy) throw new CliError(`rolled back to ${previous}, but the gateway did not answer /health`);
    emit(options, { status: "rolled_back", from: current, to: previous, restarted }, () =>
      process.stdout.write(`rolled back to ${previous}\n`),
    );
    return;
  }

  const ref = await trackedRef(current, true);
  log(`fetching ${ref}`);
  const latest = await fetchRemoteHead(current, ref);
  const head = await headOf(current);
  let release = current;
  let status: "updated" | "up_to_date" = "up_to_date";
  let restarted: Restarted[] = [];
  let version: string | undefined;
  if (latest !== head && !(await isAncestorOfHead(current, latest))) {
    log(`${head.slice(0, 12)} -> ${latest.slice(0, 12)} ${await subjectOf(current, latest)}`);
    release = await checkoutRelease(current, releasesDir, latest);
    try {
      await buildRelease(release, current, log);
      log("smoke test");
      version = await smokeTest(release);
    } catch (e) {
      log(`the new release stays unused in ${release}; ${flags.link} still points at ${current}`);
      throw e;
    }
    recordPrevious(releasesDir, current);
    flipLink(flags.link, release);
    log(`${flags.link} -> ${release}`);
    status = "updated";
    if (flags.restart) {
      const first = await restartServices(options, serves, [], logFile, flags.healthTimeoutMs, log);
      if (!first.healthy) {
        // The new release does not come up: back to the one that ran, started the same way.
        log(
          `the gateway did not answer within ${flags.healthTimeoutMs / 1000} s: switching back to ${current}`,
        );
        flipLink(flags.link, current);
        recordPrevious(releasesDir, release);
        const pids = first.restarted.flatMap((r) => (r.pid !== undefined ? [r.pid] : []));
        const back = await restartServices(options, serves, pids, logFile, flags.healthTimeoutMs, log);
        throw new CliError(
          `the new release (${latest.slice(0, 12)}) did not come up; switched back to ${current}` +
            (back.healthy ? "" : ", which does not answer either"),
          `the new release is kept in ${release}; its server output is in ${logFile}`,
        );
      }
      restarted = first.restarted;
    }
    await pruneReleases(current, releasesDir, [release, current]);
  } else log(`already at ${ref} (${head.slice(0, 12)})`);

  const tiers = flags.tiers === undefined ? [] : await buildTiers(release, flags.tiers, flags.stateDir, log);
  emit(
    options,
    {
      status,
      from: head,
      to: status === "updated" ? latest : head,
      ref,
      release,
      previous: status === "updated" ? current : undefined,
      ...(version !== undefined ? { version } : {}),
      restarted,
      tiers,
    },
    () =>
      process.stdout.write(
        status === "updated"
          ? `updated to ${latest.slice(0, 12)}${version !== undefined ? ` (bhatti ${version})` : ""}; previous release kept for: bhatti update --rollback\n`
          : `already up to date (${head.slice(0, 12)} on ${ref})\n`,
      ),
  );
}
