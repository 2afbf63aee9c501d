#!/usr/bin/env bash
# bench/gateway/soak.sh [N=1000] [RUNS=10] [PAR=100] — soak: RUNS consecutive runs of `echo ok` on N
# hosts through the gateway benchmark's jump host, in ONE process (the GatewaySoak test suite,
# skipped everywhere else), printing open descriptors, RSS and CPU after each run and failing if a
# host failed or descriptors or memory grew. Uses run.sh's namespaces and fleet (RTT 0 by default;
# RTT=30 for the slow link). Builds the tests (debug, the shared .build) unless SKIP_BUILD=1.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
N=${1:-1000}; RUNS=${2:-10}; PAR=${3:-100}
GWB_DIR=${GWB_DIR:-/tmp/gwbench}
export GWB_DIR KEEP_UP=1
[[ -n ${SKIP_BUILD:-} ]] || (cd "$ROOT" && swift build --build-tests >&2)
# the fleet, the gateway and the relays, left up for the soak (and taken down at the end)
RUNS=0 TOOLS=govuk_fab bash "$HERE/run.sh" matrix "${RTT:-0}:$N:$PAR" >/dev/null
trap 'bash "$HERE/run.sh" down' EXIT
head -n "$N" "$GWB_DIR/hosts.txt" >"$GWB_DIR/soak-hosts.txt"
cat >"$GWB_DIR/soak.env" <<EOS
gateway=root@10.77.0.1:2200
hosts_file=$GWB_DIR/soak-hosts.txt
port=2223
user=root
key=$GWB_DIR/keys/client_ed25519
known_hosts=$GWB_DIR/known_hosts_all
runs=$RUNS
parallelism=$PAR
EOS
cd "$ROOT"
# the test bundle directly: `swift test` would wait for the shared .build's lock for the whole soak
GOVUK_FAB_SOAK=$GWB_DIR/soak.env ip netns exec gwb-client \
  timeout -k 10 $(( RUNS * 300 )) .build/debug/govuk-fabPackageTests.xctest --testing-library swift-testing \
  --filter 'SSHTransportTests.GatewaySoak' 2>&1 | grep -E 'soak|passed|failed|error|Expectation' 
