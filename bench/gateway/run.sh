#!/usr/bin/env bash
# bench/gateway/run.sh — fleet tools through one jump host at a real network latency.
#
#   bench/gateway/run.sh matrix "RTT:N:PAR ..."   time every tool at each point, e.g.
#                                                  "30:200:100 0:50:20 10:50:20 30:50:20"
#   bench/gateway/run.sh turns [RTT]              round trips per host: one run of every tool on
#                                                  N=10 hosts at RTT ms (default 30) with tcpdump on
#                                                  both links, counted by turns.py
#   bench/gateway/run.sh timeline RTT:N:PAR      where each host connection's time goes: every tool
#                                                  timed as in matrix (RUNS times) with tcpdump in front
#                                                  of every host's sshd, split by timeline.py into the
#                                                  host's own time and the client side's (and its excess
#                                                  over the round trip)
#   bench/gateway/run.sh down                     stop the fleet, the gateway, remove the namespaces
#
# The network (two namespaces this script creates; nothing in the root namespace changes):
#
#   gwb-client: every tool runs here; the gateway is 10.77.0.1:2200, a delay relay (RTT ms)
#        │ veth 10.77.0.1 ↔ 10.77.0.2
#   gwb-fleet: gateway sshd 10.77.0.2:2200 (AllowTcpForwarding); host i is 127.0.A.B:2223, a
#              delay relay (1 ms RTT) in front of its sshd on 127.0.A.B:2222 (../shared/bench/fleet.sh)
#
# The delays come from delay_relay.py, not `tc netem`: this machine's kernel has no sch_netem
# (nor sch_fq for BPF departure times). The relay keeps the TCP handshake's round trip (see it).
#
# Tools (TOOLS=..., default all): govuk_fab (one gateway login carries every host),
# openssh_pj (ssh -J through xargs -P: a gateway login per host), openssh_pj_cm (the same with a
# ControlMaster to the gateway, started and stopped inside the timed command), parallel_ssh
# (parallel-ssh 2.16's proxy_host), fab1 (Fabric3 1.14 with env.gateway, -P -z PAR), fabric3
# (Fabric 3.2, one gateway Connection shared by a pool of PAR threads). OpenSSH's key exchange is
# pinned to curve25519-sha256 (9.2's default sntrup761 costs ~50 ms CPU a connection, which no
# other tool pays). Python tools come from ../shared/bench/peers.sh setup (PyPI; Debian for pssh).
#
# Settings: RUNS=1 timed runs per cell (the table shows each), TIMEOUT=300 s per tool run (the run
# is killed, and its cell says so), GWB_DIR=/tmp/gwbench, MD=FILE (also write the table there),
# BIN=path to govuk-fab (default .build-release-bench/release/govuk-fab), KEEP_UP=1 (leave the
# fleet, gateway and relays up for the next run), RELAY_QUICKACK=1 (the client↔gateway relay ACKs
# every segment at once instead of Linux's delayed ACK: a diagnostic). Each tool run logs the delay
# relays' CPU (they are single Python processes; a saturated relay would delay every tool).
#
# Opt-in, the same for every tool: SCHED=1 records the scheduler's events of every CPU while each
# tool runs (`perf record -a`) and bench/gateway/runqueue.py sums the run-queue wait and run time of
# the fleet's sshd trees (split into sshd and the remote shell), the gateway's, the relays', the
# client's and everything else's (RESULTS.runqueue; KEEP_PERF=1 keeps the perf data).
# SSHD_NO_REEXEC=1 runs every sshd of the bench (hosts and gateway) with `-r` (no re-exec per
# connection: ~7 of the ~21 ms of CPU a connection costs its host); the fleet is restarted when
# the setting changes. RELAY_NICE=N runs both delay relays at nice N (e.g. -10) so the network
# stand-in is not queued behind the processes it carries.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
GWB_DIR=${GWB_DIR:-/tmp/gwbench}
export FLEET_DIR=$GWB_DIR
BIN=${BIN:-$ROOT/.build-release-bench/release/govuk-fab}
TOOLS=${TOOLS:-govuk_fab openssh_pj openssh_pj_cm parallel_ssh fab1 fabric3}
RUNS=${RUNS:-1}
TIMEOUT=${TIMEOUT:-300}
REMOTE_CMD=${REMOTE_CMD:-echo ok}
NS_C=gwb-client
NS_F=gwb-fleet
GW_ADDR=10.77.0.1
GW_REAL=10.77.0.2
HOST_PORT=2223
GW_PORT=2200
VENV=$GWB_DIR/venv
VENV_FAB1=$GWB_DIR/venv-fab1

log() { echo "gateway-bench: $*" >&2; }
die() { log "$*"; exit 1; }
inc() { ip netns exec "$NS_C" "$@"; }
inf() { ip netns exec "$NS_F" "$@"; }

# ------------------------------------------------------------------ network ---
net_up() {
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
  command -v tcpdump >/dev/null || die "needs tcpdump"
  if ! ip netns list | grep -qw "$NS_C"; then
    ip netns add "$NS_C"
    ip netns add "$NS_F"
    ip link add gwb-c netns "$NS_C" type veth peer name gwb-g netns "$NS_F"
    inc ip addr add 10.77.0.1/24 dev gwb-c
    inf ip addr add "$GW_REAL/24" dev gwb-g
    inc ip link set lo up; inc ip link set gwb-c up
    inf ip link set lo up; inf ip link set gwb-g up
  fi
}

relay_stop() { # name
  local pf=$GWB_DIR/relay-$1.pid pid
  [[ -f $pf ]] || return 0
  pid=$(<"$pf")
  if [[ -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q delay_relay.py; then
    kill "$pid" 2>/dev/null || true
    local tries=0
    while [[ -d /proc/$pid ]] && (( ++tries < 50 )); do sleep 0.1; done
  fi
  rm -f "$pf"
}

relay_cpu() { # CPU ticks (utime+stime) of both delay relays so far: the relays are single Python processes
  local name pid total=0
  for name in gateway hosts; do
    pid=$(cat "$GWB_DIR/relay-$name.pid" 2>/dev/null) || continue
    [[ -r /proc/$pid/stat ]] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
  done
  echo "$total"
}

relay_start() { # name ns args...: a delay relay, waits until it listens
  local name=$1 ns=$2; shift 2
  relay_stop "$name"
  ( ulimit -n "$(ulimit -Hn)"; exec ip netns exec "$ns" python3 "$HERE/delay_relay.py" "$@" ) \
    >"$GWB_DIR/relay-$name.out" 2>"$GWB_DIR/relay-$name.err" &
  echo $! >"$GWB_DIR/relay-$name.pid"
  local tries=0
  until grep -q READY "$GWB_DIR/relay-$name.out" 2>/dev/null; do
    (( ++tries < 300 )) || die "relay $name did not start (see $GWB_DIR/relay-$name.err)"
    sleep 0.1
  done
}

relay_nice() { # both delay relays at nice RELAY_NICE (default 0): they stand in for the network
  local pids; pids=$(cat "$GWB_DIR"/relay-gateway.pid "$GWB_DIR"/relay-hosts.pid 2>/dev/null) || true
  python3 -c 'import os, sys
for p in sys.argv[2:]: os.setpriority(os.PRIO_PROCESS, int(p), int(sys.argv[1]))' "${RELAY_NICE:-0}" $pids
}

set_rtt() { # client ↔ gateway round trip in ms (a relay with no delay at 0, so every point pays the same hop)
  relay_start gateway "$NS_C" --rtt-ms "$1" ${RELAY_QUICKACK:+--quickack} "$GW_ADDR:$GW_PORT=$GW_REAL:$GW_PORT"
}

# ------------------------------------------------------------ fleet, gateway ---
gateway_pid() {
  local pf=$GWB_DIR/gateway/sshd.pid pid
  [[ -f $pf ]] || return 0
  pid=$(<"$pf")
  [[ -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$GWB_DIR/gateway/sshd_config" && echo "$pid"
  return 0
}

fleet_up() { # N: hosts 1..N in the fleet namespace, the gateway, the known_hosts every tool reads
  local n=$1
  local have; have=$(cat "$GWB_DIR/fleet.n" 2>/dev/null || echo 0)
  # a larger fleet already up serves (inventories take its first N hosts)
  if (( have < n )) || ! inf bash "$SHARED/fleet.sh" status >/dev/null 2>&1; then
    inf bash "$SHARED/fleet.sh" up "$(( have > n ? have : n ))" >&2
    # hosts it started run plainly: restart all if the rest ran with other flags
    if [[ -f $GWB_DIR/sshd.mode ]]; then echo mixed >"$GWB_DIR/sshd.mode"; fi
  fi
  n=$(cat "$GWB_DIR/fleet.n")
  sshd_mode "$n"
  mkdir -p "$GWB_DIR/gateway"
  if [[ -z $(gateway_pid) ]]; then
    cat >"$GWB_DIR/gateway/sshd_config" <<EOF
# the jump host — generated by bench/gateway/run.sh
AddressFamily inet
ListenAddress $GW_REAL
Port $GW_PORT
PidFile $GWB_DIR/gateway/sshd.pid
HostKey $GWB_DIR/keys/host_ed25519
AuthorizedKeysFile $GWB_DIR/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
AllowTcpForwarding yes
# one login per host (OpenSSH without ControlMaster, Fabric 1's workers) must not be dropped
MaxStartups 2000:30:4000
MaxSessions 2000
LogLevel ERROR
EOF
    inf /usr/sbin/sshd $(sshd_flags) -f "$GWB_DIR/gateway/sshd_config" -E "$GWB_DIR/gateway/sshd.log"
    local tries=0
    until [[ -n $(gateway_pid) ]]; do
      (( ++tries < 100 )) || die "gateway sshd did not start (see $GWB_DIR/gateway/sshd.log)"
      sleep 0.1
    done
  fi
  local key; key=$(cut -d' ' -f1,2 "$GWB_DIR/keys/host_ed25519.pub")
  { sed "s/^\[\([0-9.]*\)\]:2222 /[\1]:$HOST_PORT /" "$GWB_DIR/known_hosts"; echo "[$GW_ADDR]:$GW_PORT $key"; } \
    >"$GWB_DIR/known_hosts_all"
  # gateway ↔ hosts: 1 ms round trip through the hosts' relay
  if [[ $(cat "$GWB_DIR/relay-hosts.n" 2>/dev/null) != "$n" || ! -f $GWB_DIR/relay-hosts.pid ]]; then
    relay_start hosts "$NS_F" --rtt-ms 1 --listen-port "$HOST_PORT" --target-port 2222 --hosts-file "$GWB_DIR/hosts.txt"
    echo "$n" >"$GWB_DIR/relay-hosts.n"
  fi
  { cat "$GWB_DIR/sshd.pids"; gateway_pid; } >"$GWB_DIR/server.pids"
}

# SSHD_NO_REEXEC=1: every sshd of the bench (the fleet's hosts and the gateway) runs with `-r`, so a
# connection is served by the listener's fork instead of a freshly exec'd sshd (OpenSSH 9.2 still
# takes the flag: 9.8 split sshd-session out and dropped it). That takes ~7 of the ~21 ms of CPU a
# connection costs its host off the cores the client shares; every tool meets the same servers.
sshd_flags() { if [[ -n ${SSHD_NO_REEXEC:-} ]]; then echo -r; fi; }

sshd_mode() { # N: restart the hosts' listeners and the gateway if they run with the other flags
  local n=$1 want have i pid tries
  want=$( [[ -n ${SSHD_NO_REEXEC:-} ]] && echo no-reexec || echo reexec )
  have=$(cat "$GWB_DIR/sshd.mode" 2>/dev/null || echo reexec)
  [[ $have == "$want" ]] && return 0
  log "restarting the fleet's $n sshd and the gateway's ($have -> $want)"
  local pids=()
  for (( i = 1; i <= n; i++ )); do
    pid=$(cat "$GWB_DIR/hosts/$i/sshd.pid" 2>/dev/null) || continue
    if [[ -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$GWB_DIR/hosts/$i/sshd_config"; then
      pids+=("$pid")
    fi
  done
  pid=$(gateway_pid)
  if [[ -n $pid ]]; then pids+=("$pid"); fi
  if (( ${#pids[@]} )); then kill "${pids[@]}" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do
    tries=0
    while [[ -d /proc/$pid ]] && (( ++tries < 100 )); do sleep 0.05; done
  done
  for (( i = 1; i <= n; i++ )); do
    rm -f "$GWB_DIR/hosts/$i/sshd.pid"
    inf /usr/sbin/sshd $(sshd_flags) -f "$GWB_DIR/hosts/$i/sshd_config" -E "$GWB_DIR/hosts/$i/sshd.log" ||
      die "sshd for host $i did not restart"
  done
  for (( i = 1; i <= n; i++ )); do
    tries=0
    until [[ -s $GWB_DIR/hosts/$i/sshd.pid ]]; do
      (( ++tries < 100 )) || die "host $i did not come back"
      sleep 0.05
    done
  done
  for (( i = 1; i <= n; i++ )); do cat "$GWB_DIR/hosts/$i/sshd.pid"; done >"$GWB_DIR/sshd.pids"
  rm -f "$GWB_DIR/gateway/sshd.pid" # fleet_up starts the gateway again, with the same flags
  echo "$want" >"$GWB_DIR/sshd.mode"
}

net_down() {
  local pid
  relay_stop gateway; relay_stop hosts; rm -f "$GWB_DIR/relay-hosts.n"
  pid=$(gateway_pid)
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  bash "$SHARED/fleet.sh" down >&2 || true
  rm -f "$GWB_DIR/sshd.mode"
  ip netns del "$NS_C" 2>/dev/null || true
  ip netns del "$NS_F" 2>/dev/null || true
}

inventory() { # N PAR DIR: the first N hosts, in every tool's format
  local n=$1 par=$2 dir=$3 i a
  mkdir -p "$dir"
  head -n "$n" "$GWB_DIR/hosts.txt" >"$dir/hosts.txt"
  [[ $(wc -l <"$dir/hosts.txt") == "$n" ]] || die "fleet has fewer than $n hosts"
  paste -sd, "$dir/hosts.txt" >"$dir/hosts.csv"
  local common="  User root
  IdentityFile $GWB_DIR/keys/client_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $GWB_DIR/known_hosts_all
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  CheckHostIP no
  BatchMode yes
  KexAlgorithms curve25519-sha256
  ConnectTimeout 60
  LogLevel ERROR"
  for cm in no yes; do
    {
      echo "# generated by bench/gateway/run.sh"
      echo "Host gw"
      echo "  HostName $GW_ADDR"
      echo "  Port $GW_PORT"
      if [[ $cm == yes ]]; then
        echo "  ControlMaster no"
        echo "  ControlPath $GWB_DIR/cm-%C"
      else
        echo "  ControlMaster no"
        echo "  ControlPath none"
      fi
      echo "$common"
      echo "Host 127.*"
      echo "  Port $HOST_PORT"
      echo "  ProxyJump gw"
      echo "  ControlMaster no"
      echo "  ControlPath none"
      echo "$common"
    } >"$dir/ssh_config_cm_$cm"
  done
  {
    echo "name: gateway-bench"
    echo "ssh:"
    echo "  user: root"
    echo "  port: $HOST_PORT"
    echo "  identity_files: [$GWB_DIR/keys/client_ed25519]"
    echo "  known_hosts: [$GWB_DIR/known_hosts_all]"
    echo "  gateway: root@$GW_ADDR:$GW_PORT"
    echo "  connect_timeout: 60s"
    echo "parallelism: $par"
    echo "confirm_changes: false"
    echo "hosts:"
    i=0
    while read -r a; do
      i=$((i + 1))
      echo "  - {name: h$i, address: $a, puppet_classes: [bench]}"
    done <"$dir/hosts.txt"
  } >"$dir/govuk-fab.yml"
}

# -------------------------------------------------------------------- tools ---
# tool_<id> N PAR DIR sets LABEL, CMD, OK_RE (Python regex over stdout; with a group, distinct
# captures count), or returns 1 with SKIP_WHY.

tool_govuk_fab() { local n=$1 par=$2 dir=$3
  LABEL="govuk-fab"
  [[ -x $BIN ]] || { SKIP_WHY="$BIN not built"; return 1; }
  CMD=(env "XDG_STATE_HOME=$GWB_DIR/govuk-fab-state" SSH_AUTH_SOCK= "$BIN" --inventory "$dir/govuk-fab.yml"
       -P "$par" bench all "do:$REMOTE_CMD")
  OK_RE='^\[(h[0-9]+)\] out: ok$'
}

tool_openssh_pj() { local n=$1 par=$2 dir=$3
  LABEL="OpenSSH 9.2 -J (xargs -P)"
  CMD=(xargs -a "$dir/hosts.txt" -P "$par" -I{} ssh -n -F "$dir/ssh_config_cm_no" {} "$REMOTE_CMD")
  OK_RE='^ok$'
}

tool_openssh_pj_cm() { local n=$1 par=$2 dir=$3
  LABEL="OpenSSH 9.2 -J + ControlMaster"
  # The master to the gateway is part of the timed run: started first, stopped last.
  CMD=(bash -c 'set -e; cfg=$1/ssh_config_cm_yes; ssh -F "$cfg" -M -N -f gw
                trap "ssh -F \"\$cfg\" -O exit gw 2>/dev/null" EXIT
                xargs -a "$1/hosts.txt" -P "$2" -I{} ssh -n -F "$cfg" {} "$3"' _ "$dir" "$par" "$REMOTE_CMD")
  OK_RE='^ok$'
}

tool_parallel_ssh() { local n=$1 par=$2 dir=$3
  LABEL="parallel-ssh 2.16 proxy_host"
  [[ -x $VENV/bin/python ]] || { SKIP_WHY="venv missing (../shared/bench/peers.sh setup)"; return 1; }
  CMD=("$VENV/bin/python" "$HERE/tools/parallel_ssh_gw.py" --hosts-file "$dir/hosts.txt"
       --key "$GWB_DIR/keys/client_ed25519" --port "$HOST_PORT" --par "$par" --proxy "$GW_ADDR:$GW_PORT" --cmd "$REMOTE_CMD")
  OK_RE='^FLEETOK ([0-9.]+)'
}

tool_fab1() { local n=$1 par=$2 dir=$3
  LABEL="Fabric3 1.14 env.gateway (-P -z $par)"
  [[ -x $VENV_FAB1/bin/fab ]] || { SKIP_WHY="no Fabric3 venv (needs Python 3.9)"; return 1; }
  CMD=(env "FLEET_KEY=$GWB_DIR/keys/client_ed25519" "FLEET_KNOWN_HOSTS=$GWB_DIR/known_hosts_all"
       "FLEET_GATEWAY=root@$GW_ADDR:$GW_PORT" "FLEET_PORT=$HOST_PORT" "FLEET_CMD=$REMOTE_CMD" PYTHONWARNINGS=ignore
       "$VENV_FAB1/bin/fab" -f "$HERE/tools/fabfile_gw.py" -P -z "$par" -H "$(cat "$dir/hosts.csv")" bench)
  OK_RE='FLEETOK ([0-9.]+)'
}

tool_fabric3() { local n=$1 par=$2 dir=$3
  LABEL="Fabric 3.2 gateway Connection (pool $par)"
  [[ -x $VENV/bin/python ]] || { SKIP_WHY="venv missing (../shared/bench/peers.sh setup)"; return 1; }
  CMD=("$VENV/bin/python" "$HERE/tools/fabric3_gw.py" --hosts-file "$dir/hosts.txt"
       --key "$GWB_DIR/keys/client_ed25519" --known-hosts "$GWB_DIR/known_hosts_all"
       --gateway "$GW_ADDR:$GW_PORT" --port "$HOST_PORT" --par "$par" --cmd "$REMOTE_CMD")
  OK_RE='^FLEETOK ([0-9.]+)'
}

# ------------------------------------------------------------------- runner ---
RESULTS=""

run_tool() { # tool N PAR DIR RTT run# -> one TSV row
  local tool=$1 n=$2 par=$3 dir=$4 rtt=$5 r=$6
  local LABEL="" CMD=() OK_RE="" SKIP_WHY="" st=0
  "tool_$tool" "$n" "$par" "$dir" || st=$?
  if (( st != 0 )); then
    printf '%s\t%s\t%s\t%s\t%s\tSKIP\t%s\t\t\n' "$tool" "$LABEL" "$rtt" "$n" "$par" "$SKIP_WHY" >>"$RESULTS"
    return 0
  fi
  local out="$GWB_DIR/runs/$tool-rtt$rtt-n$n-p$par-$r" json load
  mkdir -p "$GWB_DIR/runs"
  rm -f "$GWB_DIR"/cm-* 2>/dev/null || true
  load=$(cut -d' ' -f1 /proc/loadavg)
  local relay0; relay0=$(relay_cpu)
  relay_nice
  local rec=()
  if [[ -n ${SCHED:-} ]]; then # scheduler events of every CPU while the tool runs (runqueue.py reads them)
    rec=(perf record -q -B -a -m 8M -o "$out.perf" -e sched:sched_switch -e sched:sched_wakeup
         -e sched:sched_wakeup_new -e sched:sched_process_fork --)
  fi
  # the wrapper execs into measure.py: its pid roots the client's process tree for runqueue.py
  json=$("${rec[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$out.client.pid" ip netns exec "$NS_C" \
           python3 "$SHARED/measure.py" --sample 0.1 --ok-regex "$OK_RE" --server-pids "$GWB_DIR/server.pids" \
           --out "$out" -- timeout -k 5 "$TIMEOUT" "${CMD[@]}" 2>"$out.perf.err")
  if [[ -n ${SCHED:-} ]]; then
    local wall; wall=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wall_s"])' "$json")
    local rq; rq=$(python3 "$HERE/runqueue.py" --perf-data "$out.perf" --wall-s "$wall" --per-host hosts \
      --group "hosts=$(paste -sd, "$GWB_DIR/sshd.pids")" --group "gateway=$(gateway_pid)" \
      --group "relays=$(cat "$GWB_DIR"/relay-*.pid | paste -sd,)" --group "client=$(<"$out.client.pid")")
    if [[ -z ${KEEP_PERF:-} ]]; then rm -f "$out.perf"; fi
    printf '%s\t%s\t%s\t%s\n' "$tool" "$r" "$load" "$rq" >>"$RESULTS.runqueue"
    log "$tool run $r run-queue wait: $rq"
  fi
  printf '%s\t%s\t%s\t%s\t%s\tRUN\t%s\t%s\t%s\n' "$tool" "$LABEL" "$rtt" "$n" "$par" "$json" "$load" \
    "$(printf '%q ' "${CMD[@]}")" >>"$RESULTS"
  log "$tool rtt=$rtt N=$n P=$par (load $load): $json; delay relays' CPU $(( $(relay_cpu) - relay0 )) ticks"
}

render() {
  python3 - "$1" <<'PYEOF'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| RTT ms | N | parallelism | tool | wall s | client CPU s | CPU ms/host | sshd CPU s (hosts+gateway) | peak RSS MiB (tree / largest process) | hosts ok | load (1 min) |")
print("|---:|---:|---:|---|---:|---:|---:|---:|---|---|---:|")
for r in rows:
    tool, label, rtt, n, par, status = r[:6]
    if status == "SKIP":
        print(f"| {rtt} | {n} | {par} | {label or tool} | skipped: {r[6]} | | | | | | |")
        continue
    j = json.loads(r[6]); n_i = int(n)
    ok = "yes" if j["ok"] == n_i and j["rc"] == 0 else f"NO ({j['ok']}/{n_i}, rc {j['rc']}{', timed out' if j['rc'] == 124 else ''})"
    srv = j.get("server_cpu_s")
    tree = j.get("tree_rss_kib")
    print(f"| {rtt} | {n} | {par} | {label} | {j['wall_s']:.2f} | {j['cpu_s']:.2f} | {1000*j['cpu_s']/n_i:.1f} | "
          f"{'-' if srv is None else f'{srv:.2f}'} | {'-' if tree is None else f'{tree/1024:.0f}'} / {j['max_rss_kib']/1024:.0f} | {ok} | {r[7]} |")
PYEOF
}

cmd_matrix() {
  local points=$1 p rtt n par maxn=0 t r
  for p in $points; do
    [[ $p =~ ^([0-9.]+):([0-9]+):([0-9]+)$ ]] || die "bad point $p (want RTT:N:PAR)"
    (( BASH_REMATCH[2] > maxn )) && maxn=${BASH_REMATCH[2]}
  done
  net_up
  if [[ -z ${KEEP_UP:-} ]]; then trap net_down EXIT; fi
  fleet_up "$maxn"
  mkdir -p "$GWB_DIR/results"
  RESULTS="$GWB_DIR/results/gateway-$(date -u +%Y%m%dT%H%M%SZ).tsv"
  : >"$RESULTS"
  for p in $points; do
    IFS=: read -r rtt n par <<<"$p"
    set_rtt "$rtt"
    local dir="$GWB_DIR/inv-$n-$par"
    inventory "$n" "$par" "$dir"
    for (( r = 1; r <= RUNS; r++ )); do
      for t in $TOOLS; do run_tool "$t" "$n" "$par" "$dir" "$rtt" "$r"; done
    done
  done
  local table; table=$(render "$RESULTS")
  echo "$table"
  if [[ -f $RESULTS.runqueue ]]; then echo; cat "$RESULTS.runqueue"; fi
  if [[ -n ${MD:-} ]]; then
    { echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'): \`bench/gateway/run.sh matrix \"$points\"\` RUNS=$RUNS TIMEOUT=$TIMEOUT"
      echo; echo "$table"; echo; echo "Raw: \`$RESULTS\`"; } >"$MD"
  fi
}

# One measuring point: network and fleet up (torn down on exit unless KEEP_UP), the RTT set, the
# inventory for N hosts at PAR written to DIR, and CAP and the results directory made.
point_up() {
  local rtt=$1 n=$2 par=$3 dir=$4 cap=$5
  net_up
  if [[ -z ${KEEP_UP:-} ]]; then trap net_down EXIT; fi
  fleet_up "$n"
  set_rtt "$rtt"
  inventory "$n" "$par" "$dir"
  mkdir -p "$cap" "$GWB_DIR/results"
}

cmd_turns() {
  local rtt=${1:-30} n=10 par=20 t
  local dir="$GWB_DIR/inv-$n-$par" cap="$GWB_DIR/captures"
  point_up "$rtt" "$n" "$par" "$dir" "$cap"
  RESULTS="$GWB_DIR/results/turns-$(date -u +%Y%m%dT%H%M%SZ).tsv"
  : >"$RESULTS"
  local host1; host1=$(head -n1 "$dir/hosts.txt")
  for t in $TOOLS; do
    local LABEL="" CMD=() OK_RE="" SKIP_WHY=""
    "tool_$t" "$n" "$par" "$dir" || { log "$t skipped: $SKIP_WHY"; continue; }
    ip netns exec "$NS_F" tcpdump -i lo -nn -s 128 -U -w "$cap/$t-hosts.pcap" "tcp port 2222 and host $host1" 2>/dev/null &
    local p1=$!
    ip netns exec "$NS_F" tcpdump -i gwb-g -nn -s 128 -U -w "$cap/$t-gateway.pcap" "tcp port $GW_PORT" 2>/dev/null &
    local p2=$!
    sleep 1
    rm -f "$GWB_DIR"/cm-* 2>/dev/null || true
    inc timeout -k 5 "$TIMEOUT" "${CMD[@]}" >"$cap/$t.out" 2>"$cap/$t.err" </dev/null || log "$t exited $?"
    sleep 1
    kill -TERM "$p1" "$p2" 2>/dev/null || true
    wait "$p1" "$p2" 2>/dev/null || true
    printf '%s\t%s\t%s\n' "$t" "$LABEL" \
      "$(python3 "$HERE/turns.py" --rtt-ms "$rtt" --host "$host1" --hosts "$n" \
          "$cap/$t-hosts.pcap" "$cap/$t-gateway.pcap")" >>"$RESULTS"
    log "$t: $(tail -n1 "$RESULTS" | cut -f3)"
  done
  python3 "$HERE/turns.py" --render "$RESULTS" --rtt-ms "$rtt"
}

cmd_timeline() {
  local p=$1 rtt n par t r
  [[ $p =~ ^([0-9.]+):([0-9]+):([0-9]+)$ ]] || die "bad point $p (want RTT:N:PAR)"
  IFS=: read -r rtt n par <<<"$p"
  local dir="$GWB_DIR/inv-$n-$par" cap="$GWB_DIR/captures"
  point_up "$rtt" "$n" "$par" "$dir" "$cap"
  RESULTS="$GWB_DIR/results/timeline-$(date -u +%Y%m%dT%H%M%SZ).tsv"
  : >"$RESULTS"
  local times="$RESULTS.timelines"
  : >"$times"
  for (( r = 1; r <= RUNS; r++ )); do
    for t in $TOOLS; do
      ip netns exec "$NS_F" tcpdump -i lo -nn -s 96 -U -w "$cap/$t-all-$r.pcap" "tcp port 2222" 2>/dev/null &
      local pc=$!
      sleep 1
      run_tool "$t" "$n" "$par" "$dir" "$rtt" "$r"
      sleep 1
      kill -TERM "$pc" 2>/dev/null || true
      wait "$pc" 2>/dev/null || true
      printf '%s\t%s\t%s\n' "$t" "$r" "$(python3 "$HERE/timeline.py" --rtt-ms "$rtt" "$cap/$t-all-$r.pcap")" >>"$times"
      log "$t run $r: $(tail -n1 "$times" | cut -f3)"
    done
  done
  render "$RESULTS"
  echo
  cat "$times"
  if [[ -f $RESULTS.runqueue ]]; then echo; cat "$RESULTS.runqueue"; fi
}

case ${1:-} in
  matrix) shift; cmd_matrix "${1:?points, e.g. \"30:200:100 0:50:20\"}" ;;
  turns) shift; cmd_turns "${1:-30}" ;;
  timeline) shift; cmd_timeline "${1:?a point, e.g. 30:200:100}" ;;
  down) net_down ;;
  *) sed -n '2,45p' "$0"; exit 2 ;;
esac
