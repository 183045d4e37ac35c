#!/usr/bin/env bash
# Shared set-up for scripts/run-demo.sh and scripts/test.sh: system packages, then a virtualenv
# with the project installed (editable) and the requested extras. Safe to run repeatedly.
# Usage: source scripts/bootstrap.sh "<extras>" "<apt packages>"
set -euo pipefail

KK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KK_VENV="${KK_VENV:-$KK_ROOT/.venv}"
KK_EXTRAS="${1:-all}"
KK_APT="${2:-}"

kk_log() { printf '\033[1m[kakehashi]\033[0m %s\n' "$*" >&2; }

kk_apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { kk_log "need root to install: ${missing[*]}"; return 1; }
    sudo="sudo"
  fi
  kk_log "installing system packages: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { kk_log "Python 3.11 or newer is required ($("$PY" --version 2>&1))"; exit 1; }

# libmagic is what python-magic wraps (file type detection for uploads and the sanitizer).
# shellcheck disable=SC2086
kk_apt_install libmagic1 $KK_APT

if [ ! -x "$KK_VENV/bin/python" ]; then
  kk_log "creating virtualenv $KK_VENV"
  "$PY" -m venv "$KK_VENV"
fi
stamp="$KK_VENV/.kakehashi-installed-$KK_EXTRAS"
if [ ! -f "$stamp" ] || [ "$KK_ROOT/pyproject.toml" -nt "$stamp" ]; then
  kk_log "installing kakehashi[$KK_EXTRAS] into $KK_VENV"
  "$KK_VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$KK_VENV/bin/python" -m pip install -q -e "$KK_ROOT[$KK_EXTRAS]"
  touch "$stamp"
fi
export PATH="$KK_VENV/bin:$PATH"
