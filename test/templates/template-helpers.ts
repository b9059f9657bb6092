import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Product } from "../thermal/product-harness.js";

export interface TemplateOnDisk {
  key: string;
  dir: string;
  manifest: { token: string; key: string; createdAt: number; image: string };
}

/** The committed templates of `image` in the product's state dir (no `.tmp`). */
export function templatesOf(product: Product, image: string): TemplateOnDisk[] {
  const root = join(product.env.stateDir, "templates", image);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((e) => !e.endsWith(".tmp") && existsSync(join(root, e, "manifest.json")))
    .map((key) => ({
      key,
      dir: join(root, key),
      manifest: JSON.parse(
        readFileSync(join(root, key, "manifest.json"), "utf8"),
      ) as TemplateOnDisk["manifest"],
    }));
}

/** Waits until `image` has a committed template that `accept` takes. */
export async function waitForTemplate(
  product: Product,
  image: string,
  accept: (t: TemplateOnDisk) => boolean = () => true,
  timeoutMs = 180_000,
): Promise<TemplateOnDisk> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = templatesOf(product, image).find(accept);
    if (found) return found;
    if (Date.now() > deadline) {
      throw new Error(
        `no template of ${image} after ${timeoutMs} ms; serve output tail: ${product.output().slice(-3000)}`,
      );
    }
    await sleep(200);
  }
}

/** How the vmm says it created `id`: "template" or "boot" (its "sandbox created" log line). */
export async function createPathOf(product: Product, id: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of product.output().split("\n")) {
      if (!line.includes('"sandbox created"') || !line.includes(id)) continue;
      const m = /"path":"(\w+)"/.exec(line);
      if (m?.[1]) return m[1];
    }
    if (Date.now() > deadline) throw new Error(`no "sandbox created" log line for ${id}`);
    await sleep(50);
  }
}

/** The agent token the engine keeps for sandbox `id` (its engine.json, root-only). */
export function engineTokenOf(product: Product, id: string): string {
  const rec = JSON.parse(
    readFileSync(join(product.env.stateDir, "sandboxes", id, "engine.json"), "utf8"),
  ) as { token: string };
  return rec.token;
}

/** Waits until `ps` in the sandbox lists a process whose command line contains `marker`. */
export async function waitForProcess(product: Product, id: string, marker: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await product.http("POST", `/sandboxes/${id}/exec`, { body: { cmd: ["ps", "-o", "args"] } });
    if (res.status === 200 && res.json<{ stdout: string }>().stdout.includes(marker)) return;
    if (Date.now() > deadline) throw new Error(`no process "${marker}" in ${id}: ${res.status} ${res.text}`);
    await sleep(100);
  }
}
