#!/usr/bin/env bash
# The run command (README): both tiers on 127.0.0.1 with embedded SQLite and the demo city.
# Data lives in var/demo/ (delete it to start over). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh "all" ""

DEMO="$PWD/var/demo"
mkdir -p "$DEMO"
LGWAN_PORT="${KAKEHASHI_LGWAN_PORT:-8440}"
RELAY_PORT="${KAKEHASHI_RELAY_PORT:-8450}"
cat > "$DEMO/lgwan.toml" <<TOML
[server]
host = "127.0.0.1"
port = $LGWAN_PORT
[storage]
data_dir = "lgwan"
[logging]
format = "text"
TOML
cat > "$DEMO/relay.toml" <<TOML
[web]
host = "127.0.0.1"
port = $RELAY_PORT
[storage]
data_dir = "relay"
[logging]
format = "text"
TOML

kk_log "loading the demo city (idempotent)"
python -m lgwan_server --config "$DEMO/lgwan.toml" load-demo

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
python -m internet_relay --config "$DEMO/relay.toml" & pids+=($!)
python -m lgwan_server --config "$DEMO/lgwan.toml" & pids+=($!)

python - "$LGWAN_PORT" "$RELAY_PORT" <<'PY'
import sys, time, urllib.request
for port in sys.argv[1:]:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit(f"port {port} did not answer /healthz")
PY
cat <<MSG

  架橋 Kakehashi is running (demo data: 架橋市).
    LGWAN server (staff):   http://127.0.0.1:$LGWAN_PORT/      API: /api/openapi.yaml
    Internet relay:         http://127.0.0.1:$RELAY_PORT/healthz
    Sanitizer:              python -m sanitizer INPUT -o OUTPUT --report REPORT.json
  Demo logins (password: kakehashi-demo-2026): sato, suzuki, tanaka, takahashi, admin (TOTP on first login)
  Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
