#!/usr/bin/env bash
# Debian's Chromium for the report and UI tests (headless). Installs only when it is missing; needs root.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then echo "chromium is missing; install Debian's chromium package as root" >&2; exit 1; fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
