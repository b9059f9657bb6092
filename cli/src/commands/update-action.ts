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
  restartServe,
  restartSystemd,
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
}

interface Restarted {
  how: "serve" | "systemd";
  pid?: number;
}

/**
 * Restarts whatever runs the old release: each `bhatti serve` started from it, or the systemd
 * units. Then waits for the gateway to answer.
 */
async function restartServices(
  options: GlobalOptions,
  serves: readonly ServeProcess[],
  logFile: string,
  log: (line: string) => void,
): Promise<Restarted[]> {
  const restarted: Restarted[] = [];
  if (await systemdActive()) {
    log("restarting the systemd units (sandboxes keep running)");
    await restartSystemd();
    restarted.push({ how: "systemd" });
  }
  for (const serve of serves) {
    log(`restarting bhatti serve (pid ${serve.pid}; sandboxes keep running; output: ${logFile})`);
    restarted.push({ how: "serve", pid: await restartServe(serve, logFile) });
  }
  if (restarted.length === 0) {
    log("no running bhatti server found: the new release runs at the next `bhatti serve`");
    return restarted;
  }
  const { resolveClientConfig } = await import("../client-config.js");
  const url = resolveClientConfig(options).url;
  if (!(await waitForGateway(url, 120_000))) {
    throw new CliError(
      `the gateway at ${url} did not come back within 120 s`,
      "roll back with: bhatti update --rollback",
    );
  }
  return restarted;
}

export async function runUpdate(options: GlobalOptions, flags: UpdateFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`update: ${line}\n`);
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
    const restarted = flags.restart ? await restartServices(options, serves, logFile, log) : [];
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
    if (flags.restart) restarted = await restartServices(options, serves, logFile, log);
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
