// Run by `npm test` after every suite: finds resources that tests (or the product under test)
// left behind. Prints one line per leak and exits 1 if there is any.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Name prefixes of network devices the product creates in the root netns (bridges, veths, taps). */
const PRODUCT_LINK_PREFIXES = ["bhbr", "bhv", "bhtap"] as const;
/** Test-created devices start with `bt`. */
const TEST_LINK_PREFIX = "bt";
const TEMP_PREFIX = "bhatti-test-";
const CGROUP_NAMES = ["bhatti-test", "bhatti"] as const;

const leaks: string[] = [];

function command(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return undefined;
  }
}

function checkNetns(): void {
  const out = command("ip", ["netns", "list"]);
  if (out === undefined) return;
  for (const line of out.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    if (name.startsWith("bt-") || name.startsWith("bhatti-")) leaks.push(`network namespace ${name}`);
  }
}

function checkLinks(): void {
  const out = command("ip", ["-o", "link", "show"]);
  if (out === undefined) return;
  for (const line of out.split("\n")) {
    // "12: name@peer: <...>"
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name === undefined) continue;
    if (name.startsWith(TEST_LINK_PREFIX) || PRODUCT_LINK_PREFIXES.some((p) => name.startsWith(p))) {
      leaks.push(`network link ${name} in the root namespace`);
    }
  }
}

function checkRunsc(): void {
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const isRunsc = argv.some((a) => a === "runsc" || a.endsWith("/runsc") || a.startsWith("runsc-"));
    if (isRunsc && argv.some((a) => a.includes(`/tmp/${TEMP_PREFIX}`) || a.includes("bhatti-test"))) {
      leaks.push(`runsc process ${pid}: ${argv.join(" ").trim().slice(0, 160)}`);
    }
  }
}

function checkCgroups(): void {
  const base = "/sys/fs/cgroup";
  if (!existsSync(base)) return;
  const hierarchies = [base, ...readdirSync(base).map((d) => join(base, d))];
  for (const dir of hierarchies) {
    for (const name of CGROUP_NAMES) {
      const path = join(dir, name);
      try {
        if (statSync(path).isDirectory()) leaks.push(`cgroup ${path}`);
      } catch {
        // absent: fine
      }
    }
  }
}

function checkMountsAndTempDirs(): void {
  const mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
  for (const line of mountinfo.split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (mountPoint?.startsWith(`/tmp/${TEMP_PREFIX}`)) leaks.push(`mount ${mountPoint}`);
  }
  for (const entry of readdirSync("/tmp")) {
    if (entry.startsWith(TEMP_PREFIX)) leaks.push(`temp dir /tmp/${entry}`);
  }
}

/** Loop devices backed by files in test temp dirs (sandbox disks that were never unmounted). */
function checkLoopDevices(): void {
  let names: string[];
  try {
    names = readdirSync("/sys/block").filter((n) => n.startsWith("loop"));
  } catch {
    return;
  }
  for (const n of names) {
    let file: string;
    try {
      file = readFileSync(join("/sys/block", n, "loop", "backing_file"), "utf8").trim();
    } catch {
      continue;
    }
    if (file.startsWith(`/tmp/${TEMP_PREFIX}`)) leaks.push(`loop device /dev/${n} backed by ${file}`);
  }
}

checkNetns();
checkLinks();
checkRunsc();
checkCgroups();
checkMountsAndTempDirs();
checkLoopDevices();

for (const leak of leaks) process.stdout.write(`leak: ${leak}\n`);
process.stdout.write(leaks.length === 0 ? "no leaked resources\n" : `${leaks.length} leaked resources\n`);
process.exit(leaks.length === 0 ? 0 : 1);
