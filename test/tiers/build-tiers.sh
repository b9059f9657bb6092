#!/bin/sh
# `npm run test:tiers` step 1: builds the tiers the tier tests need, each only if missing
# (images/<tier>/build.sh is idempotent), into BHATTI_TIERS_STATE_DIR (default /var/lib/bhatti,
# the product's images dir, where install.sh --tiers puts them), so a tier built once on a
# machine is reused by every later run. Pass tier names to build only those.
set -eu
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE_DIR="${BHATTI_TIERS_STATE_DIR:-/var/lib/bhatti}"
TIERS="${*:-browser docker computer}"
sh "$ROOT/images/minimal/build.sh" --state-dir "$STATE_DIR"
for tier in $TIERS; do
  sh "$ROOT/images/$tier/build.sh" --state-dir "$STATE_DIR"
done
