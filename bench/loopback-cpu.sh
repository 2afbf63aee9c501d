#!/usr/bin/env bash
# loopback-cpu.sh — govuk-fab's own CPU per host on a loopback fleet (target ≤ 1.5 ms a host).
#
#   loopback-cpu.sh RUNS N BINARY [BINARY...]
#
# Runs `do:'echo ok'` on hosts 1..N of a fleet made by ../shared/bench/fleet.sh, parallelism 20,
# RUNS rounds, each round every BINARY once in the order given (A B A B…, so drift in the
# machine's load hits every binary alike). For each run it prints the binary, the client's
# task-clock from `perf stat` (the govuk-fab process only: sshd is not counted), ms per host, the
# hosts that answered "ok" and the 1-minute load average. With BENCH_LOCK=FILE each timed run
# holds that flock, so benchmarks sharing a machine take turns.
#
# Environment: FLEET_DIR (default /tmp/fleet), FLEET_NETNS (a network namespace the fleet runs in,
# default none), OUT (scratch directory, default /tmp/loopback-cpu).
set -euo pipefail

runs=${1:?RUNS}
n=${2:?N}
shift 2
(($# > 0)) || { echo "usage: loopback-cpu.sh RUNS N BINARY [BINARY...]" >&2; exit 2; }
FLEET_DIR=${FLEET_DIR:-/tmp/fleet}
OUT=${OUT:-/tmp/loopback-cpu}
mkdir -p "$OUT"

inv=$OUT/inv-$n.yml
{
  echo "name: bench"
  echo "ssh: {user: root, port: 2222, identity_files: [$FLEET_DIR/keys/client_ed25519], known_hosts: [$FLEET_DIR/known_hosts], connect_timeout: 30s}"
  echo "parallelism: 20"
  echo "confirm_changes: false"
  echo "hosts:"
  head -n "$n" "$FLEET_DIR/hosts.txt" | awk '{ printf "  - {name: h%d, address: %s, puppet_classes: [bench]}\n", NR, $1 }'
} >"$inv"

netns=()
[[ -n ${FLEET_NETNS:-} ]] && netns=(ip netns exec "$FLEET_NETNS")
lock=()
[[ -n ${BENCH_LOCK:-} ]] && lock=(flock "$BENCH_LOCK")

printf '%-40s %10s %8s %5s %6s\n' binary task-ms ms/host ok load1
for ((r = 1; r <= runs; r++)); do
  for bin in "$@"; do
    "${lock[@]}" "${netns[@]}" env XDG_STATE_HOME="$OUT/state" SSH_AUTH_SOCK= \
      perf stat -x, -e task-clock -o "$OUT/stat" \
      "$bin" --inventory "$inv" -P 20 bench all do:'echo ok' >"$OUT/out" 2>"$OUT/err" || true
    ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$OUT/stat")
    ok=$(grep -c '\] out: ok$' "$OUT/out" || true)
    load=$(cut -d' ' -f1 /proc/loadavg)
    printf '%-40s %10.1f %8.3f %5d %6s\n' "$bin" "$ms" "$(echo "$ms / $n" | bc -l)" "$ok" "$load"
  done
done
