import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, type SandboxJson, exec, startProduct } from "../thermal/product-harness.js";
import { type ShareJson, loopbackRelay } from "../share/share-client.js";
import { launchChromium } from "./chromium.js";

// A share link in a real browser: headless Chromium opens the page the gateway serves (xterm.js
// bundled by the build), types into the terminal and reads the rendered output.

const artifacts = fileURLToPath(new URL("../artifacts/", import.meta.url));

/** The text xterm.js has in its buffer (what the page renders). */
const terminalText = (page: Page) =>
  page.evaluate(() => {
    const term = (
      globalThis as unknown as {
        bhattiTerminal: {
          buffer: {
            active: {
              length: number;
              getLine(i: number): { translateToString(trim: boolean): string } | undefined;
            };
          };
        };
      }
    ).bhattiTerminal;
    const lines: string[] = [];
    for (let i = 0; i < term.buffer.active.length; i++)
      lines.push(term.buffer.active.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  });

const waitForText = async (page: Page, text: string, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await terminalText(page);
    if (now.includes(text)) return now;
    if (Date.now() > deadline) throw new Error(`"${text}" never rendered; terminal:\n${now}`);
    await page.waitForTimeout(100);
  }
};

const waitForStatus = (page: Page, state: string) =>
  page.waitForFunction(
    (s) =>
      (globalThis as unknown as { document: { body: { dataset: Record<string, string | undefined> } } })
        .document.body.dataset["state"] === s,
    state,
    { timeout: 30_000 },
  );

describe("share page in Chromium", () => {
  let product: Product;
  let browser: Browser;
  let relay: Awaited<ReturnType<typeof loopbackRelay>>;
  let sandbox: SandboxJson;

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    product = await startProduct({ flags: [] });
    relay = await loopbackRelay(product);
    browser = await launchChromium();
    const res = await product.http("POST", "/sandboxes", {
      body: { name: "browser-share", image: "busybox" },
    });
    expect(res.status, res.text).toBe(201);
    sandbox = res.json<SandboxJson>();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await product?.dispose();
  }, 180_000);

  const share = async (body: Record<string, unknown> = {}) => {
    const res = await product.http("POST", `/sandboxes/${sandbox.id}/share`, { body });
    expect(res.status, res.text).toBe(201);
    return res.json<ShareJson & { token: string }>();
  };
  const open = async (token: string) => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(`http://127.0.0.1:${relay.port}/share/${token}`);
    await waitForStatus(page, "live");
    return { page, errors };
  };

  it("types a command into the terminal and sees its output; reconnects with the scrollback after a drop", async () => {
    const marker = randomBytes(4).toString("hex");
    const s = await share();
    const { page, errors } = await open(s.token);
    await page.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type(`echo hello-${marker}-$((6*7))\n`);
    await waitForText(page, `hello-${marker}-42`);
    await page.screenshot({ path: `${artifacts}share-typed.png` });

    // Network blip: every connection between the browser and the gateway is cut and the path
    // stays down a moment; the page retries with backoff and comes back to the same session.
    const port = relay.port;
    await relay.close();
    await waitForStatus(page, "lost");
    relay = await loopbackRelay(product, port);
    await waitForStatus(page, "live");
    const after = await waitForText(page, `hello-${marker}-42`);
    expect(after).toContain(`hello-${marker}-42`);
    await page.keyboard.type(`echo again-${marker}\n`);
    await waitForText(page, `again-${marker}`);
    await page.screenshot({ path: `${artifacts}share-reconnected.png` });
    // The CSP let the bundled script and styles load: no violation was reported.
    expect(errors.filter((e) => /Content Security Policy/i.test(e))).toEqual([]);
    await page.close();
  }, 120_000);

  it("a read-only link watches the session live but typed text never reaches the sandbox", async () => {
    const marker = randomBytes(4).toString("hex");
    const rw = await share();
    const ro = await share({ read_only: true, session_id: rw.session_id });
    const { page } = await open(ro.token);
    await page.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type(`touch /tmp/ro-${marker}; echo typed-${marker}\n`);
    expect(await page.locator("#status").textContent()).toBe("live (read-only)");
    await page.screenshot({ path: `${artifacts}share-read-only.png` });
    // The writer's command runs after anything the reader could have queued.
    const writer = await open(rw.token);
    await writer.page.locator(".xterm-helper-textarea").focus();
    await writer.page.keyboard.type(`echo writer-${marker}\n`);
    await waitForText(writer.page, `writer-${marker}`);
    // The reader watches live: the writer joined without taking the session from it.
    await waitForText(page, `writer-${marker}`);
    expect(await page.locator("#status").textContent()).toBe("live (read-only)");
    await page.screenshot({ path: `${artifacts}share-read-only-watching.png` });
    expect(await terminalText(writer.page)).not.toContain(`typed-${marker}`);
    const probe = await exec(product, sandbox.id, [
      "sh",
      "-c",
      `test -e /tmp/ro-${marker} && echo typed || echo clean`,
    ]);
    expect(probe.body.stdout.trim()).toBe("clean");
    await writer.page.close();
    await page.close();
  }, 120_000);
});
