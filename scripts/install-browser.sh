#!/usr/bin/env bash
# A headless browser for the tests of the lab's pages (ladders, the benchmark page): Debian's
# chromium, its matching chromedriver and an emoji font (the demo replies with one). Detects
# before it installs: nothing happens when all are there; on a Debian or Ubuntu host as root it
# installs them with apt; anywhere else it says what is missing and exits 1 (the browser tests
# then fail with that line: they are not skipped).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac  # the comment above
have() { command -v "$1" >/dev/null 2>&1; }
emoji() { fc-list 2>/dev/null | grep -qi emoji; }  # the demo's replies have one
browser() { have chromium || have chromium-browser || have google-chrome; }  # as labtools.browser
if browser && have chromedriver && { emoji || [ "$(id -u)" != 0 ]; }; then
  exit 0  # (without root, a missing emoji font only shows as a box in a screenshot)
fi
if have apt-get && [ "$(id -u)" = 0 ]; then
  echo "install-browser: installing Debian's chromium and chromium-driver (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium chromium-driver \
    fonts-noto-color-emoji >/dev/null
  have chromium && have chromedriver && exit 0
fi
echo "install-browser: need chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)" >&2
exit 1
