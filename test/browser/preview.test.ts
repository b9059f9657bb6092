import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, type SandboxJson, startProduct } from "../thermal/product-harness.js";
import { endpointPath, loopbackRelay, startWebApp } from "../proxy/proxy-harness.js";
import { artifactPath, chromiumUnavailable, launchChromium } from "./chromium.js";

interface Published {
  alias: string;
  url: string;
}

/**
 * A real browser on a preview URL: headless Chromium opens `http://<alias>.localhost:<port>/`
 * (Chromium resolves *.localhost to loopback, where a relay leads to the gateway in the test
 * netns) and the path-mode URL; the sandbox app's page builds its DOM with JS and talks to the
 * app over a WebSocket through the proxy. Screenshots go to test/artifacts/.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined || chromiumUnavailable() !== undefined)(
  "preview URLs in Chromium (product)",
  () => {
    let product: Product;
    let browser: Browser | undefined;
    const relays: { close(): Promise<void> }[] = [];
    const proxyPort = 40_000 + Math.floor(Math.random() * 20_000);
    let sandbox: SandboxJson;
    let published: Published;

    beforeAll(async () => {
      product = await startProduct({ flags: [`--proxy-listen=127.0.0.1:${proxyPort}`] });
      const res = await product.http("POST", "/sandboxes", { body: { name: "site", image: "busybox" } });
      expect(res.status, res.text).toBe(201);
      sandbox = res.json<SandboxJson>();
      await startWebApp(product, sandbox.id, [5173]);
      const pub = await product.http("POST", `/sandboxes/${sandbox.id}/publish`, { body: { port: 5173 } });
      expect(pub.status, pub.text).toBe(201);
      published = pub.json<Published>();
      browser = await launchChromium();
    }, 240_000);

    afterAll(async () => {
      await browser?.close();
      for (const relay of relays) await relay.close();
      await product?.dispose();
    }, 180_000);

    const checkPage = async (url: string, screenshot: string) => {
      if (browser === undefined) throw new Error("no browser");
      const page = await browser.newPage();
      try {
        const response = await page.goto(url);
        expect(response?.status()).toBe(200);
        // Built by the page's script, not in the HTML the server sent.
        await page.waitForSelector("#items li");
        expect(await page.locator("#items li").allTextContents()).toEqual(["item-7", "item-14", "item-21"]);
        // The page's own WebSocket, through the proxy and the agent's forward port.
        await page.waitForSelector("#ws");
        expect(await page.locator("#ws").textContent()).toBe("echo:ping-from-page");
        const file = artifactPath(screenshot);
        await page.screenshot({ path: file, fullPage: true });
        expect(existsSync(file)).toBe(true);
      } finally {
        await page.close();
      }
    };

    it("renders the sandbox app at http://<alias>.localhost:<port>/ (domain mode)", async () => {
      const relay = await loopbackRelay(await endpointPath(product));
      relays.push(relay);
      await checkPage(`http://${published.alias}.localhost:${relay.port}/`, "preview-domain-mode.png");
    }, 60_000);

    it("renders it at http://127.0.0.1:<proxy_listen>/<alias>/ (path mode)", async () => {
      const relay = await loopbackRelay(await endpointPath(product, proxyPort));
      relays.push(relay);
      await checkPage(`http://127.0.0.1:${relay.port}/${published.alias}/`, "preview-path-mode.png");
    }, 60_000);
  },
);
