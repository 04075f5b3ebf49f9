#!/usr/bin/env bash
# Install the Debian packages the test suite uses, when they are missing:
#   chromium    the browser tests of the HTML reports (Playwright drives /usr/bin/chromium;
#               no browser download)
#   postgresql  the history tests start a throwaway server from its binaries
#   redis-server  the events, Celery and Redis-store tests start a throwaway server
# The README's test command runs this first; .ci/run too. Tests never install anything
# themselves: a missing package is a test failure that names this script.
# Needs root (or sudo). Does nothing, and needs nothing, when everything is there.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "plait's tests need the Debian packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  }
  sudo=sudo
fi
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
