import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

/**
 * Probe for the pool design (docs/templates.md, "A pool of ready sandboxes"): can a RUNNING
 * gVisor sandbox move to another address in-guest (netlink RTM_NEWADDR / RTM_DELADDR /
 * RTM_NEWROUTE from `ip`, as root), and is it then reachable on the new address only, with
 * working egress? A pooled sandbox is restored before its user (and so its user's subnet) is
 * known; gVisor's netstack takes its address from the netns only at boot or restore, so a claim
 * would have to re-address the guest this way.
 *
 * Sandbox A adds <subnet>.77, then (in the background, since the vmm's own connection to A's
 * agent uses the old address) deletes its old address, re-adds the default route, dials B's
 * agent from the new address and serves a report on port 7000. Sandbox B (same bridge) checks:
 * A's agent answers on .77, no longer on the old address, and reads A's report.
 * Run as root: node --conditions=source --import tsx bench/createpool/readdress-probe.ts
 */
const SUDO = "/.bhatti/bin/sudo";
const SAMPLES = Number(process.env["SAMPLES"] ?? 20);
const product = await startProduct({ flags: ["--thermal-warm-after=1h", "--thermal-cold-after=2h"] });
try {
  const make = async (name: string) => {
    const r = await product.http("POST", "/sandboxes", { body: { name } });
    if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
    return r.json<{ id: string }>().id;
  };
  const sh = async (id: string, script: string) => {
    const r = await Promise.race([
      exec(product, id, [SUDO, "sh", "-c", script]),
      sleep(20_000).then(() => undefined),
    ]);
    return r === undefined ? "(no answer in 20 s)" : JSON.stringify(r.body);
  };
  const a = await make("probe-a");
  const b = await make("probe-b");
  const addrOf = async (id: string) => {
    const out = await exec(product, id, ["sh", "-c", "ip -4 -o addr show dev eth0 | awk '{print $4}'"]);
    return out.body.stdout.trim().split("/")[0] as string;
  };
  const oldA = await addrOf(a);
  const addrB = await addrOf(b);
  const prefix = oldA.slice(0, oldA.lastIndexOf("."));
  const newA = `${prefix}.77`;
  console.log(`A ${oldA} -> ${newA}; B ${addrB}`);
  console.log("A: ip addr add:", await sh(a, `ip addr add ${newA}/24 dev eth0 && echo added`));
  const background = [
    "sleep 1",
    `ip addr del ${oldA}/24 dev eth0; echo "del=$?"`,
    `ip route replace default via ${prefix}.1 dev eth0; echo "route=$?"`,
    "ip -4 addr show dev eth0; ip route",
    `echo egress: $(nc -w 2 ${addrB} 1024 </dev/null | tr -dc 'a-z ')`,
  ].join("; ");
  console.log(
    "A: background re-address:",
    await sh(a, `( (${background}) > /tmp/report 2>&1; nc -l -p 7000 < /tmp/report ) >/dev/null 2>&1 &`),
  );
  await sleep(3_000);
  console.log(
    "B: dial A:",
    await sh(
      b,
      `echo new: $(nc -w 2 ${newA} 1024 </dev/null | tr -dc 'a-z '); echo old: $(nc -w 2 ${oldA} 1024 </dev/null | tr -dc 'a-z '); echo report:; nc -w 2 ${newA} 7000 </dev/null`,
    ),
  );
  // The guest's half of a claim-time move, timed: two `ip` execs (add the address, replace the
  // default route) through a root shell, against the same shell running two `true`s, interleaved
  // REST execs in B (each iteration adds one more address; harmless in the test's netns).
  const ipCmds: number[] = [];
  const trueCmds: number[] = [];
  const prefixB = addrB.slice(0, addrB.lastIndexOf("."));
  const timed = async (script: string) => {
    const t0 = performance.now();
    const r = await exec(product, b, [SUDO, "sh", "-c", script]);
    if (r.body.exit_code !== 0) throw new Error(`${script}: ${JSON.stringify(r.body)}`);
    return performance.now() - t0;
  };
  for (let i = 0; i < SAMPLES; i++) {
    ipCmds.push(
      await timed(
        `ip addr add ${prefixB}.${100 + i}/24 dev eth0 && ip route replace default via ${prefixB}.1 dev eth0`,
      ),
    );
    trueCmds.push(await timed("true && true"));
  }
  report(`guest re-address, REST exec through sudo sh (${SAMPLES} samples)`, "ms", [
    { name: "sh: true && true", samples: trueCmds },
    { name: "sh: ip addr add && ip route replace", samples: ipCmds },
  ]);
  const [l1] = loadavg();
  console.log(`load average ${l1?.toFixed(1)}`);
} finally {
  await product.dispose();
}
