import { readFileSync, writeFileSync } from "node:fs";

// /proc/sys/net belongs to the network namespace of the process that opens it, so this
// changes only the netns the service runs in (the host's, or a test's stand-in host).
const path = "/proc/sys/net/ipv4/ip_forward";

export function enableIpForward(): void {
  if (readFileSync(path, "utf8").trim() !== "1") writeFileSync(path, "1\n");
}
