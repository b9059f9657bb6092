// Run by `npm test` after every suite: finds resources that tests (or the product under test)
// left behind. Prints one line per leak and exits 1 if there is any.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

// Only test names are looked at: a real `bhatti serve` on the same machine (cgroup parent
// `bhatti`, `bhbr*`/`bhv*`/`bhtap*` devices, `bhatti-*` netns, nft table `bhatti`) is the
// product's installed state, never a test's leak. Tests and their harnesses use these instead.
/** Test-created devices and network namespaces start with `bt` (`bt-…` for namespaces). */
const TEST_LINK_PREFIX = "bt";
const TEST_NETNS_PREFIX = "bt-";
/** Test nft tables: `bt_<run>` (serve-harness). */
const TEST_NFT_TABLE_PREFIX = "bt_";
const TEMP_PREFIX = "bhatti-test-";
/** Test cgroup parents live below `bhatti-test/`. */
const TEST_CGROUP_PARENT = "bhatti-test";

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
    if (name.startsWith(TEST_NETNS_PREFIX)) leaks.push(`network namespace ${name}`);
  }
}

function checkLinks(): void {
  const out = command("ip", ["-o", "link", "show"]);
  if (out === undefined) return;
  for (const line of out.split("\n")) {
    // "12: name@peer: <...>"
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name === undefined) continue;
    if (name.startsWith(TEST_LINK_PREFIX)) {
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
    const path = join(dir, TEST_CGROUP_PARENT);
    try {
      if (statSync(path).isDirectory()) leaks.push(`cgroup ${path}`);
    } catch {
      // absent: fine
    }
  }
}

function checkNftTables(): void {
  const out = command("nft", ["list", "tables"]);
  if (out === undefined) return;
  for (const line of out.split("\n")) {
    // "table inet bt_1a2b3c"
    const [, family, name] = line.trim().split(/\s+/);
    if (name?.startsWith(TEST_NFT_TABLE_PREFIX)) leaks.push(`nft table ${family} ${name}`);
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
checkNftTables();
checkMountsAndTempDirs();
checkLoopDevices();

for (const leak of leaks) process.stdout.write(`leak: ${leak}\n`);
process.stdout.write(leaks.length === 0 ? "no leaked resources\n" : `${leaks.length} leaked resources\n`);
process.exit(leaks.length === 0 ? 0 : 1);
