#!/usr/bin/env bash
# Make sure Debian's Chromium is installed (the browser test of the HTML report drives it
# with Playwright; no browser download). Prints its path.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
command -v chromium
