#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's Chromium through Playwright (never
# `playwright install`: the browser comes from the distribution). Installs it when missing.
set -euo pipefail

CHROMIUM="${PICLOUD_TEST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "10-chromium: $CHROMIUM is missing; install Debian's chromium package (as root:" >&2
    echo "  apt-get update && apt-get install -y chromium) or set PICLOUD_TEST_CHROMIUM" >&2
    exit 1
fi
echo "10-chromium: installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium fonts-liberation
"$CHROMIUM" --version
