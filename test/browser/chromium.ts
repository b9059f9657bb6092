import { type Browser, chromium } from "playwright-core";

/** Debian's chromium package (installed by install.sh); playwright-core drives it over CDP. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Headless Chromium; `--no-sandbox` because the tests run as root. Close it with `browser.close()`. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox"] });
}
