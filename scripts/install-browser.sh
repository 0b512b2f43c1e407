#!/usr/bin/env bash
# Installs headless Chromium (Debian's package) for the browser test of the operator console
# (tests/e2e/test_admin_browser.py drives it with Playwright's Python client through
# executable_path=/usr/bin/chromium: Playwright's own browser download is never used).
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (or sudo).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null | tail -n1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
