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
QUEUE_PORT="${KAKEHASHI_QUEUE_PORT:-8451}"

# Each tier's Ed25519 key, exchanged the way admins do it: compare fingerprints, then install.
fp() { python -c 'import sys; from pathlib import Path; from shared.signing import fingerprint, load_signer; print(fingerprint(load_signer(Path(sys.argv[1])).public_key))' "$1"; }
if [ ! -f "$DEMO/keys-relay/peers.json" ]; then
  kakehashi-keys generate --keys "$DEMO/keys-lgwan" --force >/dev/null
  kakehashi-keys generate --keys "$DEMO/keys-relay" --force >/dev/null
  kakehashi-keys install-peer --keys "$DEMO/keys-relay" --public-key "$DEMO/keys-lgwan/signing.pub" --fingerprint "$(fp "$DEMO/keys-lgwan")"
  kakehashi-keys install-peer --keys "$DEMO/keys-lgwan" --public-key "$DEMO/keys-relay/signing.pub" --fingerprint "$(fp "$DEMO/keys-relay")"
fi

# The sanitizer service signs every file it rebuilt with its own key; LGWAN trusts that key only.
if [ ! -f "$DEMO/keys-lgwan-sanitizer-trust/peers.json" ]; then
  kakehashi-keys generate --keys "$DEMO/keys-sanitizer" --force >/dev/null
  kakehashi-keys install-peer --keys "$DEMO/keys-lgwan-sanitizer-trust" --public-key "$DEMO/keys-sanitizer/signing.pub" --fingerprint "$(fp "$DEMO/keys-sanitizer")"
fi
# A short folder for the Unix socket (paths are limited to 107 bytes).
SOCK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kakehashi-demo-XXXXXX")"
SANITIZER_SOCK="$SOCK_DIR/sanitizer.sock"
trap 'rm -rf "$SOCK_DIR"' EXIT

cat > "$DEMO/lgwan.toml" <<TOML
[server]
host = "127.0.0.1"
port = $LGWAN_PORT
[storage]
data_dir = "lgwan"
[logging]
format = "text"
[bridge]
# The LGWAN server dials out to the relay's queue port; the relay never connects in.
enabled = true
relay_url = "ws://127.0.0.1:$QUEUE_PORT/queue"
relay_public_url = "http://127.0.0.1:$RELAY_PORT"
keys_dir = "keys-lgwan"
# Files from guests and phones: only those the sanitizer rebuilt and signed (re-checked here in a confined worker).
sanitizer_keys_dir = "keys-lgwan-sanitizer-trust"
TOML
cat > "$DEMO/relay.toml" <<TOML
[web]
host = "127.0.0.1"
port = $RELAY_PORT
[queue]
host = "127.0.0.1"
port = $QUEUE_PORT
keys_dir = "keys-relay"
[storage]
data_dir = "relay"
[guests]
organisation_name = "架橋市"
[logging]
format = "text"
[sanitizer]
socket = "$SANITIZER_SOCK"
TOML

kk_log "loading the demo city (idempotent)"
python -m lgwan_server --config "$DEMO/lgwan.toml" load-demo

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$SOCK_DIR"; }
trap cleanup EXIT INT TERM
python -m sanitizer serve --socket "$SANITIZER_SOCK" --keys "$DEMO/keys-sanitizer" --log-format text & pids+=($!)
for _ in $(seq 300); do [ -S "$SANITIZER_SOCK" ] && break; sleep 0.1; done
[ -S "$SANITIZER_SOCK" ] || { echo "the sanitizer service did not start" >&2; exit 1; }
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

  架け橋 Kakehashi is running (demo data: 架橋市).
    LGWAN server (staff):     http://127.0.0.1:$LGWAN_PORT/        API: /api/openapi.yaml
    Internet relay (guests):  http://127.0.0.1:$RELAY_PORT/         queue port $QUEUE_PORT (LGWAN dials out to it)
    Sanitizer service:        $SANITIZER_SOCK (guests' and phones' files are rebuilt before they cross)
    Sanitizer, by hand:       python -m sanitizer INPUT -o OUTPUT --report REPORT.json
  Demo logins (password: kakehashi-demo-2026): sato, suzuki, tanaka, takahashi, admin (TOTP on first login)
  Rooms that cross to the relay: 災害対策本部連絡 (staff phones), 医療機関との連絡 (guests).
  Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
