import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium package (install.sh installs it for tests). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Why browser tests cannot run here, or undefined. */
export const chromiumUnavailable = (): string | undefined =>
  existsSync(CHROMIUM_PATH) ? undefined : `no ${CHROMIUM_PATH}`;

/** Headless Chromium; the caller closes it (in afterAll/finally). Tests run as root: --no-sandbox. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox"] });
}

/** A path under test/artifacts/ (gitignored) for screenshots. */
export function artifactPath(name: string): string {
  const dir = fileURLToPath(new URL("../artifacts/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
