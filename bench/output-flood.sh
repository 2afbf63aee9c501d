#!/usr/bin/env bash
# Peak memory of govuk-fab while hosts flood it with output (issue 11: memory flat in output size).
#
#   bench/output-flood.sh [HOSTS] [MEGABYTES] [BINARY]    (as root; default 3 hosts, 50 MB each)
#
# Starts a test fleet, runs `do:'head -c N /dev/zero | base64'` on every host (text output to a
# file), and prints the peak RSS and wall time that /usr/bin/time -v measured.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOSTS=${1:-3}
MB=${2:-50}
BIN=${3:-$ROOT/.build/debug/govuk-fab}
[ -x "$BIN" ] || { echo "output-flood: $BIN missing (swift build --product govuk-fab)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "output-flood: needs GNU time (apt-get install time)" >&2; exit 1; }
WORK=$(mktemp -d /dev/shm/govuk-flood.XXXXXX)
chmod 0755 "$WORK"  # the hosts' non-root login must reach the fleet's authorized_keys
trap '"$ROOT/scripts/testfleet.sh" down "$WORK/fleet" --purge >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$ROOT/scripts/testfleet.sh" up "$WORK/fleet" "$HOSTS" flood --owner $$ >/dev/null
. "$WORK/fleet/fleet.env"
{
    echo "name: flood"
    echo "ssh: {user: $TESTFLEET_USER, port: $TESTFLEET_PORT, identity_files: [$TESTFLEET_KEY], known_hosts: [$TESTFLEET_KNOWN_HOSTS], command_timeout: 10m}"
    echo "parallelism: $HOSTS"
    echo "hosts:"
    while IFS=$'\t' read -r name address port _; do echo "  - {name: $name, address: $address, port: $port}"; done <"$WORK/fleet/hosts.tsv"
} >"$WORK/inventory.yml"
XDG_STATE_HOME=$WORK/state /usr/bin/time -v "$BIN" --inventory "$WORK/inventory.yml" flood all \
    "do:head -c $((MB * 1000000)) /dev/zero | base64" >"$WORK/out.txt" 2>"$WORK/time.txt" || true
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt")
echo "output flood: $HOSTS hosts x $MB MB (base64, $(wc -l <"$WORK/out.txt") lines printed): peak RSS $((rss / 1024)) MiB, wall $wall"
tail -1 "$WORK/out.txt"
grep -m3 "FAILED" "$WORK/out.txt" || true
