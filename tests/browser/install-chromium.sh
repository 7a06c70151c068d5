#!/usr/bin/env sh
# The browser tests drive Debian's Chromium (/usr/bin/chromium) with Playwright; never a downloaded one.
# `make test` runs this when /usr/bin/chromium is missing.
set -eu
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
