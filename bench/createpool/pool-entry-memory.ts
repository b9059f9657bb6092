import { existsSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { percentiles } from "../foundation/stats.js";

/**
 * What a pool entry would cost (docs/templates.md, "A pool of ready sandboxes"): a pool entry is
 * an idle hot sandbox restored from the image's template, so this measures the memory (the
 * vmm's SandboxStats: the sandbox cgroup's memory) and host tasks of N idle sandboxes created
 * from the template, beside N booted ones of the same image, in the same run.
 * Run as root: node --conditions=source --import tsx bench/createpool/pool-entry-memory.ts
 */
const N = Number(process.env["SAMPLES"] ?? 5);
const product = await startProduct({
  flags: ["--thermal-warm-after=1h", "--thermal-cold-after=2h", "--create-template-images=busybox"],
});
const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
try {
  const root = join(product.env.stateDir, "templates", "busybox");
  for (let i = 0; ; i++) {
    if (existsSync(root) && readdirSync(root).some((e) => existsSync(join(root, e, "manifest.json")))) break;
    if (i > 1800) throw new Error("no busybox template");
    await sleep(100);
  }
  const make = async (name: string, body: Record<string, unknown>) => {
    const r = await product.http("POST", "/sandboxes", { body: { name, image: "busybox", ...body } });
    if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
    const id = r.json<{ id: string }>().id;
    const e = await exec(product, id, ["true"]);
    if (e.body.exit_code !== 0) throw new Error(`exec in ${name}: ${JSON.stringify(e.body)}`);
    return id;
  };
  const fromTemplate: string[] = [];
  const booted: string[] = [];
  for (let i = 0; i < N; i++) {
    fromTemplate.push(await make(`tpl-${i}`, {}));
    booted.push(await make(`boot-${i}`, { memory_mb: 1000 }));
  }
  // Idle sandboxes: let the first exec's and the claim's transient memory settle.
  await sleep(5_000);
  const stats = async (ids: string[]) => {
    const mem: number[] = [];
    const tasks: number[] = [];
    for (const id of ids) {
      const s = await vmm.client.sandboxStats({ id });
      mem.push(Number(s.memoryBytes) / 2 ** 20);
      tasks.push(s.tasks);
    }
    return { mem, tasks };
  };
  const t = await stats(fromTemplate);
  const b = await stats(booted);
  const [l1] = loadavg();
  process.stdout.write(`\nload average ${l1?.toFixed(1)}; busybox, idle hot, ${N} sandboxes each\n`);
  const line = (name: string, v: number[]) => {
    const p = percentiles(v);
    return `${name.padEnd(44)}${p.p50.toFixed(1).padStart(8)}${Math.min(...v)
      .toFixed(1)
      .padStart(8)}${Math.max(...v)
      .toFixed(1)
      .padStart(8)}${String(p.n).padStart(4)}\n`;
  };
  process.stdout.write(`${"".padEnd(44)}${"p50".padStart(8)}${"min".padStart(8)}${"max".padStart(8)}   n\n`);
  process.stdout.write(line("memory (MiB), from template (= a pool entry)", t.mem));
  process.stdout.write(line("memory (MiB), booted", b.mem));
  process.stdout.write(line("host tasks, from template (= a pool entry)", t.tasks));
  process.stdout.write(line("host tasks, booted", b.tasks));
  for (const id of [...fromTemplate, ...booted]) await product.http("DELETE", `/sandboxes/${id}`);
} finally {
  vmm.close();
  await product.dispose();
}
