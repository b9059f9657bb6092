import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxInfo } from "@bhatti/service-vmm/engine";
import { createTierEnv, noLeaks, reportSkip, type TierEnv, waitFor } from "./tier-harness.js";

// The computer tier's desktop seen from the host: the boot hook starts Xvnc, XFCE and noVNC
// (websockify on 6901); headless Chromium on the host opens the noVNC page through a loopback
// port forwarded by the agent, logs in with the password `vnc-creds` prints, and sees the
// desktop drawn on the canvas. The screenshot is kept in test/artifacts/.
const HOST_CHROMIUM = "/usr/bin/chromium";
const skip = reportSkip("computer");
const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
const WIDTH = 1024;
const HEIGHT = 640;

// Page-side expressions (strings: this project compiles without the DOM library).
const CONNECTED = `document.documentElement.classList.contains("noVNC_connected")`;
const STATUS = `(document.getElementById("noVNC_status")?.textContent ?? "")`;
// The desktop paints many colours (panel, icons) where an empty X server is one colour.
const DESKTOP_DRAWN = `(() => {
  const c = document.querySelector("#noVNC_container canvas");
  const data = c?.getContext("2d")?.getImageData(0, 0, c.width, c.height).data;
  if (!data) return false;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4 * 97) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return colours.size > 20;
})()`;

describe.skipIf(skip)("computer tier", () => {
  let t: TierEnv;
  let sb: SandboxInfo;
  let browser: Browser | undefined;
  let ready: Promise<{ password: string; port: number }> | undefined;
  // The boot hook starts the desktop in the background: wait for its credentials and client.
  const desktopReady = () =>
    (ready ??= waitFor(
      "vnc-creds and the client on 6901",
      async () => {
        const r = await t.sh(
          sb.id,
          "vnc-creds --json && curl -sf -o /dev/null http://127.0.0.1:6901/vnc.html",
        );
        return r.exitCode === 0 ? (JSON.parse(r.stdout) as { password: string; port: number }) : undefined;
      },
      90_000,
    ));

  beforeAll(async () => {
    t = await createTierEnv("computer");
    sb = await t.create({
      memoryMb: 2048,
      cpus: 2,
      env: { DISPLAY_WIDTH: String(WIDTH), DISPLAY_HEIGHT: String(HEIGHT) },
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (!t) return;
    const leaks = await t.dispose();
    expect(leaks).toEqual(noLeaks(leaks));
  }, 120_000);

  it("generates VNC credentials on first boot and serves the noVNC client on 6901", async () => {
    const creds = await desktopReady();
    expect(creds.password).toMatch(/^[A-Za-z0-9]{8}$/);
    expect(creds.port).toBe(6901);
    // Xvnc listens on loopback only: the password-protected client is the way in.
    const listen = await t.sh(sb.id, "cat /proc/net/tcp");
    expect(listen.stdout).toMatch(/0100007F:170D 00000000:0000 0A/); // 127.0.0.1:5901 LISTEN
    expect(listen.stdout).not.toMatch(/00000000:170D 00000000:0000 0A/);
  }, 120_000);

  it("the noVNC page in headless Chromium on the host connects and shows the desktop", async () => {
    const creds = await desktopReady();
    const port = await t.forward(sb.id, 6901);
    browser = await chromium.launch({ executablePath: HOST_CHROMIUM, args: ["--no-sandbox"] });
    const page = await browser.newPage({ viewport: { width: WIDTH + 40, height: HEIGHT + 80 } });
    await page.goto(
      `http://127.0.0.1:${port}/vnc.html?autoconnect=true&resize=off&password=${encodeURIComponent(creds.password)}`,
    );
    await page.waitForFunction(CONNECTED, null, { timeout: 60_000 });
    // The canvas takes the server's framebuffer size (the one asked for in the env).
    const size = await page.evaluate(
      `(() => { const c = document.querySelector("#noVNC_container canvas"); return { width: c.width, height: c.height }; })()`,
    );
    expect(size).toEqual({ width: WIDTH, height: HEIGHT });
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, "computer-desktop.png");
    const desktopDrawn = page.waitForFunction(DESKTOP_DRAWN, null, { timeout: 120_000, polling: 1000 });
    try {
      await desktopDrawn;
    } catch (e) {
      await page.screenshot({ path: file });
      const logs = await t.sh(sb.id, "tail -n 30 ~/.local/state/bhatti-desktop/*.log; ps -eo pid,args");
      console.log(`computer tier: the desktop was not drawn; screenshot ${file}\n${logs.stdout}`);
      throw e;
    }
    await page.screenshot({ path: file });
    console.log(`computer tier: desktop screenshot in ${file}`);
    const xfce = await t.sh(sb.id, "pgrep -x xfce4-panel >/dev/null && pgrep -x xfwm4 >/dev/null && echo up");
    expect(xfce.stdout.trim()).toBe("up");
  }, 240_000);

  it("after a cold cycle (checkpoint, restore) the desktop answers again with the same password", async () => {
    const before = await desktopReady();
    expect((await t.engine.stop(sb.id)).thermal).toBe("cold");
    expect((await t.engine.start(sb.id)).thermal).toBe("hot");
    const port = await t.forward(sb.id, 6901);
    browser ??= await chromium.launch({ executablePath: HOST_CHROMIUM, args: ["--no-sandbox"] });
    const page = await browser.newPage({ viewport: { width: WIDTH + 40, height: HEIGHT + 80 } });
    await page.goto(
      `http://127.0.0.1:${port}/vnc.html?autoconnect=true&resize=off&password=${encodeURIComponent(before.password)}`,
    );
    await page.waitForFunction(CONNECTED, null, { timeout: 60_000 });
    await page.waitForFunction(DESKTOP_DRAWN, null, { timeout: 60_000, polling: 1000 });
    await page.screenshot({ path: join(ARTIFACTS, "computer-desktop-after-restore.png") });
  }, 240_000);

  it("a wrong password is refused", async () => {
    await desktopReady();
    const port = await t.forward(sb.id, 6901);
    browser ??= await chromium.launch({ executablePath: HOST_CHROMIUM, args: ["--no-sandbox"] });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/vnc.html?autoconnect=true&password=wrongpw0`);
    // noVNC 1.3: "New connection has been rejected with reason: <the server's reason>".
    await page.waitForFunction(`/rejected/i.test(${STATUS})`, null, { timeout: 60_000 });
    const status = String(await page.evaluate(STATUS));
    console.log(`computer tier: wrong password: ${status}`);
    expect(status).toMatch(/authentication/i);
    expect(await page.evaluate(CONNECTED)).toBe(false);
  }, 120_000);
});
