#!/bin/sh
# Builds the "browser" tier: minimal + Debian's chromium-headless-shell (with fonts), Node.js 22
# and npm, and playwright-core and @playwright/test installed globally and wired to that
# Chromium, so a Playwright script or `npx playwright test` launches it with no browser download (Playwright's CDN is not needed): the Playwright
# browser cache of root and of the sandbox user holds Debian's binary under the path
# playwright-core expects for its revision.
#
# Usage: images/browser/build.sh [--state-dir DIR] [--mirror URL] [--force]   (see images/lib/tier.sh)
set -eu
NAME=browser
DESCRIPTION="minimal + Chromium (headless shell), Node.js 22, Playwright 1.65 wired to that Chromium"
NODE_VERSION=22.23.5
NPM_VERSION=10.9.9
# The newest version published for all three packages (@playwright/test trails playwright).
PLAYWRIGHT_VERSION=1.65.1
. "$(dirname "$0")/../lib/tier.sh"

tier_begin "$@"
tier_apt chromium-headless-shell fonts-liberation fonts-noto-color-emoji
tier_node "$NODE_VERSION" "$NPM_VERSION"
# playwright brings the test runner (`npx playwright test`) and @playwright/test is what specs
# import; all three share one playwright-core, so one browser revision.
tier_npm_global "playwright-core@$PLAYWRIGHT_VERSION" "playwright@$PLAYWRIGHT_VERSION" "@playwright/test@$PLAYWRIGHT_VERSION"

# Playwright looks for its headless shell at <cache>/ms-playwright/chromium_headless_shell-<revision>/
# chrome-headless-shell-linux64/chrome-headless-shell: one shared directory holds that path as
# a link to Debian's binary, and each user's cache (~/.cache/ms-playwright) links to it.
revision=$(tier_chroot node -p 'require("/usr/local/lib/node_modules/playwright-core/browsers.json").browsers.find((b) => b.name === "chromium-headless-shell").revision')
shell_dir="$ROOTFS/opt/ms-playwright/chromium_headless_shell-$revision/chrome-headless-shell-linux64"
mkdir -p "$shell_dir"
ln -sfn /usr/bin/chromium-headless-shell "$shell_dir/chrome-headless-shell"
touch "$ROOTFS/opt/ms-playwright/chromium_headless_shell-$revision/INSTALLATION_COMPLETE"
for home in /root /home/lohar; do
  mkdir -p "$ROOTFS$home/.cache"
  ln -sfn /opt/ms-playwright "$ROOTFS$home/.cache/ms-playwright"
done
chown -h 1000:1000 "$ROOTFS/home/lohar/.cache" "$ROOTFS/home/lohar/.cache/ms-playwright"

chromium_version=$(tier_chroot dpkg-query -W -f='${Version}' chromium-headless-shell)
tier_finish ",\"chromium\":\"$chromium_version\",\"node\":\"$NODE_VERSION\",\"playwright_core\":\"$PLAYWRIGHT_VERSION\",\"playwright_revision\":\"$revision\""
