#!/usr/bin/env bash
# A test network for the deploy/ firewall rules, made of network namespaces (issue 8). Needs root,
# iproute2 and nftables. It never touches the host's own interfaces, routes or rule set: every veth pair
# is created between two lab namespaces, every address and route lives inside them, and every nft
# command runs inside a lab namespace.
#
#   LGWAN接続系                                   インターネット接続系
#   term  staff terminal 10.201.2.10 ──┐     ┌── relay  internet relay 10.202.1.10 (443 web, 8451 queue)
#   lgwan LGWAN server   10.201.1.10 ──┤ gw  ├── guest  guest / staff phone 10.202.2.10
#                                      └─────┘
#   gw is the router between the segments. It forwards everything and filters nothing, so whatever is
#   blocked in the lab is blocked by the hosts' own rule sets from deploy/, loaded into "lgwan" and
#   "relay" with the lab's addresses in their site sets.
#
# Usage:
#   scripts/netns-lab.sh up [ID]                  build the lab (namespaces kk-ID-<role>; ID default "lab")
#   scripts/netns-lab.sh down [ID]                stop what runs inside and delete the namespaces
#   scripts/netns-lab.sh status [ID]              namespaces, addresses, counters
#   scripts/netns-lab.sh exec ID ROLE CMD...      run CMD inside a role's namespace
#   scripts/netns-lab.sh firewall ID lgwan|relay on|off   (re)load or remove one host's rule set
#   scripts/netns-lab.sh addresses                the lab addresses as KEY=VALUE lines
# To try it by hand: up, then e.g. "scripts/netns-lab.sh exec lab relay curl -m2 http://10.201.1.10/"
# (refused and counted), then "status", then down.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROLES=(gw lgwan term relay guest)

# role  gw-side-address  host-address  prefix
declare -A HOST_ADDR=([lgwan]=10.201.1.10 [term]=10.201.2.10 [relay]=10.202.1.10 [guest]=10.202.2.10)
declare -A GW_ADDR=([lgwan]=10.201.1.1 [term]=10.201.2.1 [relay]=10.202.1.1 [guest]=10.202.2.1)
LGWAN_SEGMENT=10.201.0.0/16
INTERNET_SEGMENT=10.202.0.0/16
STAFF_NET=10.201.2.0/24
ADMIN_NET_LGWAN=10.201.3.0/24      # no host in the lab: ssh stays closed
ADMIN_NET_RELAY=10.202.3.0/24

die() { echo "netns-lab: $*" >&2; exit 1; }
ns() { echo "kk-$1-$2"; }

check_id() {
  [[ "$1" =~ ^[a-z0-9]{1,12}$ ]] || die "lab id must be 1-12 lowercase letters or digits: $1"
}

need() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and nftables)"
  command -v ip >/dev/null || die "iproute2 (ip) is not installed"
  command -v nft >/dev/null || die "nftables (nft) is not installed"
}

addresses() {
  for role in lgwan term relay guest; do
    echo "${role^^}=${HOST_ADDR[$role]}"
  done
  echo "LGWAN_SEGMENT=$LGWAN_SEGMENT"
  echo "INTERNET_SEGMENT=$INTERNET_SEGMENT"
  echo "STAFF_NET=$STAFF_NET"
}

lgwan_site() {
  cat <<NFT
add element inet kakehashi_lgwan staff_nets { $STAFF_NET }
add element inet kakehashi_lgwan admin_nets { $ADMIN_NET_LGWAN }
add element inet kakehashi_lgwan relay_queue { ${HOST_ADDR[relay]} }
add element inet kakehashi_lgwan internet_segment { $INTERNET_SEGMENT }
NFT
}

relay_site() {
  cat <<NFT
add element inet kakehashi_relay lgwan_servers { ${HOST_ADDR[lgwan]} }
add element inet kakehashi_relay lgwan_segment { $LGWAN_SEGMENT }
add element inet kakehashi_relay admin_nets { $ADMIN_NET_RELAY }
NFT
}

firewall() {
  local id="$1" host="$2" state="$3"
  case "$host" in
    lgwan) local rules="$ROOT/deploy/lgwan/nftables/kakehashi-lgwan.nft" table=kakehashi_lgwan site=lgwan_site ;;
    relay) local rules="$ROOT/deploy/relay/nftables/kakehashi-relay.nft" table=kakehashi_relay site=relay_site ;;
    *) die "firewall: host must be lgwan or relay" ;;
  esac
  case "$state" in
    on)  { cat "$rules"; "$site"; } | ip netns exec "$(ns "$id" "$host")" nft -f - ;;
    off) ip netns exec "$(ns "$id" "$host")" nft delete table inet "$table" ;;
    *) die "firewall: state must be on or off" ;;
  esac
}

up() {
  local id="$1"
  need
  for role in "${ROLES[@]}"; do
    [ ! -e "/run/netns/$(ns "$id" "$role")" ] || die "namespace $(ns "$id" "$role") exists; run: $0 down $id"
  done
  trap 'echo "netns-lab: set-up failed; removing the lab" >&2; down "$id"' ERR
  for role in "${ROLES[@]}"; do
    ip netns add "$(ns "$id" "$role")"
    ip -n "$(ns "$id" "$role")" link set lo up
  done
  local gw; gw="$(ns "$id" gw)"
  for role in lgwan term relay guest; do
    local host; host="$(ns "$id" "$role")"
    # Both ends are born inside lab namespaces: the host namespace never sees them.
    ip -n "$gw" link add "$role" type veth peer name eth0 netns "$host"
    ip -n "$gw" addr add "${GW_ADDR[$role]}/24" dev "$role"
    ip -n "$gw" link set "$role" up
    ip -n "$host" addr add "${HOST_ADDR[$role]}/24" dev eth0
    ip -n "$host" link set eth0 up
    # A default route on purpose: "no route out of LGWAN" has to come from the rule set, not from here.
    ip -n "$host" route add default via "${GW_ADDR[$role]}"
  done
  # Forwarding inside the router namespace only (the sysctl is per namespace).
  ip netns exec "$gw" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  firewall "$id" lgwan on
  firewall "$id" relay on
  trap - ERR
  echo "netns-lab: lab '$id' is up"
  addresses
}

down() {
  local id="$1" role name pids
  for role in "${ROLES[@]}"; do
    name="$(ns "$id" "$role")"
    [ -e "/run/netns/$name" ] || continue
    # Only processes inside this lab's namespaces: the lab started them.
    pids="$(ip netns pids "$name" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$name" || echo "netns-lab: could not delete $name" >&2
  done
}

status() {
  local id="$1" role name
  for role in "${ROLES[@]}"; do
    name="$(ns "$id" "$role")"
    if [ -e "/run/netns/$name" ]; then
      echo "== $name: $(ip -n "$name" -brief -4 addr show | awk '$1 != "lo" {print $1, $3}' | tr '\n' ' ')"
    else
      echo "== $name: (absent)"
    fi
  done
  for host in lgwan relay; do
    name="$(ns "$id" "$host")"
    [ -e "/run/netns/$name" ] || continue
    ip netns exec "$name" nft list counters 2>/dev/null \
      | awk -v h="$host" '$1 == "counter" {c=$2} $1 == "packets" {print "   " h " counter " c ": " $2 " packets"}'
  done
}

cmd="${1:-}"
[ -n "$cmd" ] || { sed -n '2,27p' "$0"; exit 2; }
shift
case "$cmd" in
  up)        id="${1:-lab}"; check_id "$id"; up "$id" ;;
  down)      id="${1:-lab}"; check_id "$id"; need; down "$id" ;;
  status)    id="${1:-lab}"; check_id "$id"; status "$id" ;;
  exec)      [ $# -ge 3 ] || die "usage: exec ID ROLE CMD..."; check_id "$1"
             name="$(ns "$1" "$2")"; shift 2; exec ip netns exec "$name" "$@" ;;
  firewall)  [ $# -eq 3 ] || die "usage: firewall ID lgwan|relay on|off"; check_id "$1"; need; firewall "$@" ;;
  addresses) addresses ;;
  *) die "unknown command: $cmd (up, down, status, exec, firewall, addresses)" ;;
esac
