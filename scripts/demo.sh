#!/usr/bin/env bash
# The whole story on one machine (make demo): a demo fleet of "cache" hosts
# (real sshd hosts on loopback, each with its own files and processes), a
# "production" app on each, and a "staging" server that counts what it gets.
# govuk-fab deploys goreplay, goreplay mirrors traffic to staging, the nightly
# data sync stops it, an aborted sync leaves it off, recover-goreplay fixes it.
#
#   scripts/demo.sh        run the demo (as root; `make demo` builds first)
#   scripts/demo.sh down   stop whatever an interrupted demo left running
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/demo-state
RUN=$STATE/run                 # the test fleet's work directory
FLEET=$STATE/fleet             # what inventories/local.yml reads
BIN=${GOVUK_FAB_BIN:-$ROOT/.build/release}
STAGING_PORT=8099
APP_PORT=7999
HOSTS=3
MARKER=/etc/govuk/env.d/FACTER_data_sync_in_progress

# Every govuk-fab command runs at a fixed daytime moment, so the demo tells the
# same story at any hour (the data-sync window is 23:00–05:30 London time).
DAY="$(date -u +%F)T12:00:00Z"
NIGHT="$(date -u +%F)T23:30:00Z"

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "== $*"; }
show() { printf '\n$ %s\n' "$*"; }

# Runs a govuk-fab command line, printing it first; returns its exit status
# without stopping the demo (some steps are meant to fail).
fab() {
    local now=$1; shift
    show "govuk-fab $*"
    local status=0
    # deploy-goreplay uploads the goreplay built next to this govuk-fab.
    (cd "$ROOT" && GOVUK_FAB_NOW=$now GOVUK_FAB_GOREPLAY_BINARY="$BIN/goreplay" "$BIN/govuk-fab" "$@") || status=$?
    echo "(exit status $status)"
    return 0
}

staging_counts() { cat "$STATE/staging-counts.json" 2>/dev/null || echo '{}'; }

# Whether PID is running (a zombie waiting to be reaped has stopped).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Waits until none of the PIDs is running: SIGTERM was sent, so 10 s, then SIGKILL and 5 s more.
# Returns 1, naming what is left, if something survives even that.
wait_gone() {
    local deadline=$((SECONDS + 10)) killed=no pid
    local -a left
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            if [ "$killed" = yes ]; then
                for pid in "${left[@]}"; do
                    echo "demo: pid $pid did not exit: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
                done
                return 1
            fi
            kill -KILL "${left[@]}" 2>/dev/null || true
            killed=yes deadline=$((SECONDS + 5))
        fi
        set -- "${left[@]}"
        sleep 0.1
    done
}

# Stops everything the demo started and waits until it has exited, so `make demo` and
# `make demo-down` return with nothing of the demo still running (or say what is).
down() {
    local pid status=0
    local -a pids=()
    if [ -f "$STATE/staging.pid" ]; then
        pid=$(cat "$STATE/staging.pid")
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q demo-http.py; then
            kill "$pid" 2>/dev/null && pids+=("$pid")
        fi
    fi
    if [ -f "$RUN/.testfleet" ]; then
        # Waits (bounded) for every host's sshd, its sessions and its apps to exit, and says if one did not.
        "$ROOT/scripts/testfleet.sh" down "$RUN" --purge >/dev/null || status=1
    fi
    # Anything else that still names the fleet's directory (its watcher, a host's process).
    if [ -d "$RUN" ]; then
        for pid in $(pgrep -f "$RUN/" || true); do
            [ "$pid" != "$$" ] && kill "$pid" 2>/dev/null && pids+=("$pid")
        done
    fi
    [ ${#pids[@]} -eq 0 ] || wait_gone "${pids[@]}" || status=1
    if [ "$status" -ne 0 ]; then
        echo "demo: something the demo started did not stop (above); $STATE kept: run 'make demo-down' again" >&2
        return 1
    fi
    rm -f "$STATE/staging.pid"
    rm -rf "$FLEET" "$RUN"
}

if [ "${1:-}" = down ]; then down || exit 1; echo "demo: stopped"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it starts sshd hosts with their own mounts)" >&2; exit 1; }
for b in govuk-fab goreplay; do
    [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing: run make demo (it builds first)" >&2; exit 1; }
done
down
mkdir -p "$STATE" "$FLEET"
# Ctrl-C or a kill still stops the demo's processes (bash runs the EXIT trap only on exit).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'down || exit 1' EXIT
started=$(date +%s)

step "1. A demo fleet: $HOSTS cache hosts, each a real sshd on its own loopback address"
show "scripts/testfleet.sh up demo-state/run $HOSTS cache"
"$ROOT/scripts/testfleet.sh" up "$RUN" "$HOSTS" cache --owner $$ >/dev/null
cp "$RUN/client/id_ed25519" "$FLEET/id_ed25519"
cp "$RUN/known_hosts" "$FLEET/known_hosts"
{
    echo "hosts:"
    while IFS=$'\t' read -r name address port _; do
        [ "$name" = name ] && continue
        printf '  - name: %s\n    address: %s\n    port: %s\n    node_class: cache\n' "$name" "$address" "$port"
        printf '    puppet_classes: [govuk::node::s_cache, gor, router::gor]\n'
    done <"$RUN/hosts.tsv"
} >"$FLEET/hosts.yml"
cat "$FLEET/hosts.yml"
echo "(govuk-fab logs in as 'oncall', which has passwordless sudo, as on production hosts; see inventories/local.yml)"
# What Puppet would have made on a real cache host: the data-sync marker's directory.
while IFS=$'\t' read -r name _ _ root; do mkdir -p "$root/etc/govuk/env.d"; done <"$RUN/hosts.tsv"

step "2. A production app on each cache host (port $APP_PORT), and a staging server (127.0.0.1:$STAGING_PORT)"
while IFS=$'\t' read -r name address _ _; do
    [ "$name" = name ] && continue
    "$ROOT/scripts/testfleet.sh" exec "$RUN" "$name" sh -c \
        "setsid python3 '$ROOT/scripts/demo-http.py' app $address $APP_PORT $name </dev/null >/dev/null 2>&1 &"
    echo "$name: app on http://$address:$APP_PORT/"
done <"$RUN/hosts.tsv"
setsid python3 "$ROOT/scripts/demo-http.py" staging 127.0.0.1 "$STAGING_PORT" "$STATE/staging-counts.json" \
    </dev/null >/dev/null 2>&1 &
echo $! >"$STATE/staging.pid"
sleep 1

send_traffic() {
    local label=$1
    show "curl … (GET, HEAD, OPTIONS, POST, DELETE to every cache host)"
    local n=0
    while IFS=$'\t' read -r name address _ _; do
        [ "$name" = name ] && continue
        for i in 1 2 3 4 5; do
            curl -s -o /dev/null "http://$address:$APP_PORT/page-$i?from=$label" && n=$((n+1))
        done
        curl -s -o /dev/null -I "http://$address:$APP_PORT/head" && n=$((n+1))
        curl -s -o /dev/null -X OPTIONS "http://$address:$APP_PORT/" && n=$((n+1))
        curl -s -o /dev/null -X POST -d 'form=1' "http://$address:$APP_PORT/form" && n=$((n+1))
        curl -s -o /dev/null -X DELETE "http://$address:$APP_PORT/thing" && n=$((n+1))
    done <"$RUN/hosts.tsv"
    echo "$n requests answered by production (of them, 7 per host are GET/HEAD/OPTIONS)"
    sleep 3
    echo "staging has received: $(staging_counts)"
}

step "3. Deploy goreplay to the cache hosts"
fab "$DAY" local puppet_class:gor goreplay.config
fab "$DAY" local puppet_class:gor deploy-goreplay

step "4. Traffic to production is mirrored to staging (only GET/HEAD/OPTIONS are replayed)"
send_traffic first

step "5. A second deploy changes nothing"
fab "$DAY" local puppet_class:gor deploy-goreplay

step "6. 23:00: the nightly data sync starts: marker 'true', GoReplay stopped"
fab "$NIGHT" local puppet_class:gor data-sync.start
fab "$NIGHT" local puppet_class:gor check-goreplay
echo "(inside the window Icinga does not alert)"

step "7. The sync aborts: at 12:00 the next day the marker still says 'true' and GoReplay is off"
fab "$DAY" local puppet_class:gor do:"cat $MARKER"
fab "$DAY" local puppet_class:gor check-goreplay

step "8. recover-goreplay refuses inside the window, then recovers every host in the day"
fab "$NIGHT" local puppet_class:gor recover-goreplay
fab "$DAY" local puppet_class:gor recover-goreplay --dry-run
fab "$DAY" local puppet_class:gor recover-goreplay
fab "$DAY" local puppet_class:gor recover-goreplay

step "9. GoReplay is healthy and staging receives traffic again"
fab "$DAY" local puppet_class:gor check-goreplay
send_traffic second

step "Summary"
echo "- deploy-goreplay installed goreplay on $HOSTS hosts and a second run changed nothing"
echo "- staging received only the GET/HEAD/OPTIONS requests: $(staging_counts)"
echo "- data-sync.start stopped GoReplay; check-goreplay went CRITICAL outside the window"
echo "- recover-goreplay refused inside the window, then cleared the marker and started GoReplay"
echo "- govuk-fab logged in as 'oncall' with passwordless sudo, as in production, never as root"
echo "- demo took $(( $(date +%s) - started ))s; everything it started is stopped before it returns"
