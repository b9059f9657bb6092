// An agent's idle CPU after an engine cold cycle (checkpoint, restore) of one busybox sandbox:
// 10 execs, 5 s idle (host CPU of the sandbox's runsc processes), stop (checkpoint) and start
// (restore), 10 execs, 5 s idle again, then the guest's per-process CPU ticks 2 s apart. A
// healthy agent idles at ~0-30 ms per 5 s; a spinning one at 2-3 s (its MainThread ticks climb).
// The agent package is this checkout's agent/dist (scripts/build.mjs).
//
//   SPIN_MODE=off|default|pool12 node --conditions=source --import tsx bench/spin/idle-after-restore.ts
// Modes: "off" removes the spawner from the test package (the agent then forks Node per exec),
// "pool12" patches the bundle's pool default to 12, "default" runs the package as built.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createAgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
const env = await createGvisorTestEnv();
const mode = process.env["SPIN_MODE"] ?? "default";
const pkg = join(env.stateDir, "agent");
if (mode === "off") rmSync(join(pkg, "spawner"));
if (mode === "pool12") {
  const b = readFileSync(join(pkg, "agent.mjs"), "utf8");
  const patched = b.replace(/process\.env\[?"?\.?BHATTI_AGENT_SPAWNER_POOL"?\]?/g, '"12"');
  if (patched === b) throw new Error("pool env read not found in the bundle");
  writeFileSync(join(pkg, "agent.mjs"), patched);
}
console.log("mode", mode);
const deadline = setTimeout(() => {
  console.log("TIMEOUT");
  void Promise.all(engine.list().map((s) => engine.destroy(s.id).catch(() => undefined)))
    .then(() => env.teardown())
    .then(() => process.exit(3));
}, 90_000);
// SPIN_RUNSC: a wrapper (e.g. one adding --debug --strace) used instead of the test runsc.
const runscWrapper = process.env["SPIN_RUNSC"];
const engine = createGvisorEngine(
  runscWrapper === undefined ? env.options : { ...env.options, runscPath: runscWrapper },
);
try {
  const sb = await engine.create(testSpec("busybox", { name: "bench-idle", memoryMb: 1024 }));
  const client = async () => {
    const ep = engine.agentEndpoint(sb.id);
    const [c, f] = await Promise.all([
      env.options.dialer.endpoint(ep.host, ep.controlPort),
      env.options.dialer.endpoint(ep.host, ep.forwardPort),
    ]);
    return createAgentClient({ control: c, forward: f, token: ep.token });
  };
  const cpu = () =>
    execFileSync("ps", ["-eo", "pid=,args="])
      .toString()
      .split("\n")
      .filter((l) => l.includes("runsc") && l.includes(sb.id))
      .map((l) => Number(l.trim().split(" ")[0]))
      .reduce((s, pid) => {
        try {
          const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
          return s + (Number(f[11]) + Number(f[12])) * TICK_MS;
        } catch {
          return s;
        }
      }, 0);
  const idle = async (label: string) => {
    const c0 = cpu();
    await new Promise((r) => setTimeout(r, 5000));
    console.log(label, "sandbox CPU over 5 s idle:", (cpu() - c0).toFixed(0), "ms");
  };
  let a = await client();
  for (let i = 0; i < 10; i++) await a.exec(["true"]);
  a.close();
  await idle("hot, before the cold cycle");
  // The guest's TCP table before the stop: do connections the agent has closed linger?
  if (process.env["SPIN_TCP_BEFORE"] === "1") {
    const b = await client();
    console.log("guest tcp before the stop:\n" + (await b.exec(["cat", "/proc/net/tcp"])).stdout.toString());
    b.close();
  }
  console.log("stopping");
  await engine.stop(sb.id);
  console.log("stopped");
  await engine.start(sb.id);
  console.log("started");
  a = await client();
  const r = await a.exec(["sh", "-c", "echo $(cat /proc/$PPID/comm)"]);
  console.log("after restore:", r.stdout.toString().trim());
  for (let i = 0; i < 10; i++) await a.exec(["true"]);
  a.close();
  await idle("hot, after the cold cycle");
  a = await client();
  const t = await a.exec(
    [
      "sh",
      "-c",
      "for p in /proc/[0-9]*; do echo $(basename $p) $(cut -d' ' -f2,14,15 $p/stat); done; sleep 2; echo ---; for p in /proc/[0-9]*; do echo $(basename $p) $(cut -d' ' -f2,14,15 $p/stat); done; ls -l /proc/$PPID/fd | wc -l",
    ],
    { root: true },
  );
  console.log(t.stdout.toString(), t.stderr.toString());
  // The agent's fds and what its epoll instances watch (gVisor's fdinfo lists tfd/events).
  const d = await a.exec(
    [
      "sh",
      "-c",
      'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = MainThread ] && A=$(basename $p); done; echo agent $A; ls -l /proc/$A/fd; for f in /proc/$A/fd/*; do case "$(readlink $f)" in *eventpoll*) echo "== $f"; cat /proc/$A/fdinfo/$(basename $f);; esac; done; cat /proc/$A/task/*/stat | cut -d" " -f1,2,3,14,15; cat /proc/net/unix | head -40; cat /proc/net/tcp',
    ],
    { root: true },
  );
  console.log(d.stdout.toString(), d.stderr.toString());
  a.close();
} finally {
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await env.teardown();
  clearTimeout(deadline);
}
