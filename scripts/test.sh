#!/usr/bin/env bash
# The test command (README, .ci/run): installs everything the tests need, lints, runs pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/lgwan_server -k receipts
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bootstrap.sh
# chromium (Debian's) for the browser tests; Playwright drives it and never downloads its own.
source scripts/bootstrap.sh "all,test" "chromium fonts-noto-cjk fonts-noto-color-emoji nftables iproute2 nginx-light"

kk_log "ruff"
ruff check .

kk_log "mypy"
mypy lgwan_server internet_relay shared sanitizer

kk_log "pytest"
set +e
python -m pytest -q -ra -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  # pytest's "no tests collected" (e.g. a -k filter that matched nothing) is not a failure of the code.
  kk_log "WARNING: pytest collected no tests (exit 5); nothing was tested"
  exit 0
fi
exit "$status"
