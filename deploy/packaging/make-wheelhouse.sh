#!/usr/bin/env bash
# Build a tier's wheel and download every dependency next to it: a folder ("wheelhouse") that installs
# with no network at all, as an LGWAN接続系 host needs (no internet there; carry the folder across by the
# organisation's approved media path and check its SHA256SUMS on arrival).
#
# Usage: deploy/packaging/make-wheelhouse.sh TIER OUT_DIR [extra pip download args]
#   TIER     lgwan | relay | sanitizer
#   OUT_DIR  created if missing; receives kakehashi_<tier>-*.whl, the dependency wheels and SHA256SUMS
# To build for another machine than this one, pass pip's platform options, e.g.
#   --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp
#
# Then on the target host (its own virtual environment per tier):
#   python3 -m venv /opt/kakehashi/<tier>
#   /opt/kakehashi/<tier>/bin/pip install --no-index --find-links OUT_DIR kakehashi-<tier>
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
TIER="$1"; OUT="$2"; shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"

case "$TIER" in
  lgwan|relay|sanitizer) ;;
  *) echo "unknown tier: $TIER (lgwan, relay or sanitizer)" >&2; exit 2 ;;
esac

mkdir -p "$OUT"
wheel="$("$PY" "$HERE/build_wheels.py" --out "$OUT" "$TIER")"
dist="kakehashi-$TIER"
version="$(basename "$wheel" | cut -d- -f2)"
# --find-links OUT: our own wheel comes from OUT, its dependencies from the package index.
"$PY" -m pip download --quiet --dest "$OUT" --find-links "$OUT" "$@" "$dist==$version"
(cd "$OUT" && sha256sum -- *.whl > SHA256SUMS)
echo "$OUT: $(ls "$OUT"/*.whl | wc -l) wheels for $dist $version (checksums in SHA256SUMS)"
