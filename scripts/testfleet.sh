#!/usr/bin/env bash
# testfleet.sh: a fleet of real OpenSSH sshd hosts on loopback for tests and the demo.
#
# Each host is one sshd running as PID 1 of its own PID + mount + UTS namespace
# (via unshare), listening on its own 127.A.B.i address, with its own host keys,
# hostname and private copies of a few filesystem paths (bind mounts that exist
# only inside that host's mount namespace). See docs/test-fleet.md.
#
# Usage:
#   testfleet.sh up DIR N [PREFIX] [--owner PID]   start N hosts PREFIX-1..N (default host-1..N)
#   testfleet.sh down DIR [--purge]                stop every host of DIR, release its subnet
#   testfleet.sh stop-host DIR NAME                stop one host (it then refuses connections)
#   testfleet.sh start-host DIR NAME               start a stopped host again
#   testfleet.sh exec DIR NAME CMD [ARG...]        run CMD inside NAME's namespaces
#                                                  (exit 125: NAME is not running)
#   testfleet.sh status DIR                        one line per host: name address port state
#   testfleet.sh isolate DIR NAME [--bridge]       move NAME into the fleet's own network namespace,
#                                                  reachable only from hosts isolated with it; with
#                                                  --bridge its address also forwards into the
#                                                  namespace (socat), so it can serve as the gateway
#   testfleet.sh drop DIR NAME                     inside the fleet's namespace, drop every packet to NAME's
#                                                  sshd (iptables): a network cut with TCP left half-open
#   testfleet.sh undrop DIR NAME                   stop dropping
#   testfleet.sh stall DIR NAME                    SIGSTOP NAME's bridge (every socat of it): TCP stays up,
#                                                  no byte flows (a stalled gateway)
#   testfleet.sh resume DIR NAME                   SIGCONT the bridge
#
# Environment:
#   TESTFLEET_PATHS          colon-separated private paths
#                            (default /etc/govuk:/etc/govuk-fab:/run/govuk-fab:/var/log/govuk-fab:/opt/goreplay)
#   TESTFLEET_PORT           sshd port on every address (default 2222)
#   TESTFLEET_START_TIMEOUT  seconds to wait for all sshds to listen (default 60)
#   TESTFLEET_CLAIMS         directory of subnet claims (default /tmp/govuk-testfleet-subnets)
set -euo pipefail

readonly SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly DEFAULT_PATHS="/etc/govuk:/etc/govuk-fab:/run/govuk-fab:/var/log/govuk-fab:/opt/goreplay"
readonly PORT="${TESTFLEET_PORT:-2222}"
readonly CLAIMS="${TESTFLEET_CLAIMS:-/tmp/govuk-testfleet-subnets}"
readonly START_TIMEOUT="${TESTFLEET_START_TIMEOUT:-60}"
readonly SSHD=/usr/sbin/sshd
readonly SFTP_SERVER=/usr/lib/openssh/sftp-server
# The default login, as in production: not root, with passwordless sudo. It exists only inside the
# hosts' mount namespaces (their own /etc/passwd, group, shadow and sudoers), never on this machine.
readonly LOGIN_USER=oncall
readonly LOGIN_UID=2342

die() { echo "testfleet: $*" >&2; exit 1; }

usage() {
    sed -n '/^# Usage:/,/^# Environment:/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "the test fleet needs root for unshare/mount: run as root"
    local tool
    for tool in "$SSHD" ssh-keygen unshare nsenter setsid mount sudo; do
        command -v "$tool" >/dev/null || die "missing $tool (install openssh-server, util-linux and sudo)"
    done
}

# Absolute path of an existing directory.
absolute_dir() { (cd "$1" && pwd -P); }

# Fails unless DIR holds a fleet created by `up`.
require_fleet() {
    [ -n "${1:-}" ] || usage
    [ -f "$1/.testfleet" ] || die "$1 is not a test fleet directory (no $1/.testfleet)"
}

# Closes every inherited descriptor above 2, so long-lived daemons never hold
# pipes of whoever ran us open (a caller reading our output to EOF would hang).
close_inherited_fds() {
    local fd
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# True when PID is alive (not a zombie) and its command line contains NEEDLE,
# so a recycled pid is never mistaken for one of ours.
# (Builtins only: these run per host in loops over up to 250 hosts.)
pid_matches() {
    local pid=$1 needle=$2
    local -a args=()
    [ -n "$pid" ] || return 1
    mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 1
    [ ${#args[@]} -gt 0 ] && [[ " ${args[*]} " == *"$needle"* ]]
}

# Sets variable NAME to the first line of FILE, or "" if it is missing
# (no command substitution: that would fork).
read_file() {
    local -n _target=$1
    _target=""
    [ -r "$2" ] && read -r _target <"$2" || true
}

# Start time of PID in clock ticks (field 22 of /proc/PID/stat); empty if gone.
pid_start_time() {
    local stat
    [ -n "$1" ] || return 0
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    stat=${stat##*) }
    set -- $stat
    echo "${20}"
}

# True while the process PID that started at START has not finished exiting.
# A namespace's PID 1 only turns zombie once the kernel has killed and reaped
# every other process in the namespace, so this is the "namespace gone" test.
pid_running_since() {
    local pid=$1 start=$2 stat
    [ -n "$pid" ] && [ -n "$start" ] || return 1
    read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
    stat=${stat##*) }
    set -- $stat
    [ "${20}" = "$start" ] && [ "$1" != Z ] && [ "$1" != X ]
}

private_paths() {
    local raw="${TESTFLEET_PATHS-$DEFAULT_PATHS}" path
    local -a list
    IFS=: read -r -a list <<<"$raw"
    for path in "${list[@]}"; do
        [ -n "$path" ] && echo "$path"
    done | sort -u
}

# Rejects private paths that would hide something the fleet itself needs.
validate_paths() {
    local dir=$1 path
    while read -r path; do
        [[ "$path" == /* ]] || die "private path '$path' in TESTFLEET_PATHS is not absolute"
        [[ "$path" != *"/.."* && "$path" != *"/./"* && "$path" != */. ]] \
            || die "private path '$path' must not contain . or .. components"
        case "$path" in
        /usr/local/bin) ;;  # nothing sshd needs lives there; tests put per-host stub commands in it
        / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | /usr | /usr/* | /bin | /sbin | /lib | /lib64 | /etc | /run | /run/sshd | /var | /root)
            die "private path '$path' would hide system files sshd needs" ;;
        esac
        case "$dir/" in "${path%/}/"*) die "private path '$path' would hide the fleet directory $dir" ;; esac
        case "$path/" in "$dir/"*) die "private path '$path' lies inside the fleet directory $dir" ;; esac
    done
}

# Claims a free 127.A.B.0/24 atomically (mkdir) and prints "A.B".
claim_subnet() {
    local dir=$1 a b attempt
    mkdir -p "$CLAIMS"
    for attempt in $(seq 1 2000); do
        a=$((64 + RANDOM % 190))
        b=$((RANDOM % 256))
        if mkdir "$CLAIMS/$a.$b" 2>/dev/null; then
            echo "$dir" >"$CLAIMS/$a.$b/owner"
            echo "$a.$b"
            return 0
        fi
    done
    die "no free 127.A.B subnet found in $CLAIMS after 2000 attempts"
}

release_subnet() {
    local dir=$1 subnet claim
    [ -f "$dir/subnet" ] || return 0
    subnet=$(cat "$dir/subnet")
    claim="$CLAIMS/$subnet"
    # Only release a claim that is still ours.
    if [ -f "$claim/owner" ] && [ "$(cat "$claim/owner")" = "$dir" ]; then
        rm -f "$claim/owner"
        rmdir "$claim" 2>/dev/null || true
    fi
}

write_sshd_config() {
    local hd=$1 addr=$2
    # printf, not cat: a fork per host adds up over 250 hosts.
    printf '%s\n' >"$hd/sshd_config" \
        "# Generated by testfleet.sh for ${hd##*/}." \
        "ListenAddress $addr:$PORT" \
        "HostKey $hd/ssh_host_ed25519_key" \
        "HostKey $hd/ssh_host_ecdsa_key" \
        "AuthorizedKeysFile $hd/authorized_keys" \
        "PermitRootLogin prohibit-password" \
        "PubkeyAuthentication yes" \
        "PasswordAuthentication no" \
        "KbdInteractiveAuthentication no" \
        "UsePAM no" \
        "StrictModes no" \
        "PidFile $hd/sshd.pid" \
        "Subsystem sftp $SFTP_SERVER" \
        "MaxStartups 200:30:400" \
        "MaxSessions 50" \
        "LogLevel INFO" \
        "PrintMotd no" \
        "PrintLastLog no" \
        "UseDNS no" \
        "# root's ~/.bashrc here runs pyenv init for login shells; SHLVL=1 keeps commands fast." \
        "SetEnv SHLVL=1" \
        "AllowTcpForwarding yes"
}

# Writes the script that runs as PID 1 of the host's namespaces: bind the private
# paths, set the hostname, then become sshd.
write_boot_script() {
    local dir=$1 name=$2 hd="$1/hosts/$2" path
    {
        echo '#!/bin/bash'
        echo 'set -euo pipefail'
        while read -r path; do
            printf 'mount --bind %q %q\n' "$hd/root$path" "$path"
        done <"$dir/paths"
        for path in passwd group shadow sudoers; do
            printf 'mount --bind %q %q\n' "$dir/etc/$path" "/etc/$path"
        done
        # sudo resolves the hostname and warns on stderr of every command if it cannot.
        printf 'mount --bind %q /etc/hosts\n' "$hd/etc-hosts"
        printf 'hostname %q\n' "$name"
        printf 'exec %q -D -f %q -E %q\n' "$SSHD" "$hd/sshd_config" "$hd/sshd.log"
    } >"$hd/boot.sh"
}

prepare_host() {
    local dir=$1 name=$2 addr=$3 hd="$1/hosts/$2" path
    mkdir -p "$hd/root"
    echo "$addr" >"$hd/address"
    echo "$PORT" >"$hd/port"
    ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$hd/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -b 256 -N '' -C "$name" -f "$hd/ssh_host_ecdsa_key"
    local client_key
    read -r client_key <"$dir/client/id_ed25519.pub"
    echo "$client_key" >"$hd/authorized_keys"
    local -a roots=()
    while read -r path; do roots+=("$hd/root$path"); done <"$dir/paths"
    [ ${#roots[@]} -eq 0 ] || mkdir -p "${roots[@]}"
    { cat /etc/hosts; echo "$addr $name"; } >"$hd/etc-hosts"
    write_sshd_config "$hd" "$addr"
    write_boot_script "$dir" "$name"
}

# The hosts' account files: this machine's, plus LOGIN_USER (home under DIR) with NOPASSWD sudo.
# shadow's "*" is "no password", not "locked" ("!"), which sshd would refuse even for a key.
write_accounts() {
    local dir=$1 etc="$1/etc" home="$1/home/$LOGIN_USER"
    mkdir -p "$etc" "$home"
    chown "$LOGIN_UID:$LOGIN_UID" "$home"
    chmod 0755 "$home"
    grep -v "^$LOGIN_USER:" /etc/passwd >"$etc/passwd"
    echo "$LOGIN_USER:x:$LOGIN_UID:$LOGIN_UID:govuk-fab test login:$home:/bin/bash" >>"$etc/passwd"
    grep -v "^$LOGIN_USER:" /etc/group >"$etc/group"
    echo "$LOGIN_USER:x:$LOGIN_UID:" >>"$etc/group"
    grep -v "^$LOGIN_USER:" /etc/shadow >"$etc/shadow"
    echo "$LOGIN_USER:*:19000:0:99999:7:::" >>"$etc/shadow"
    chmod 0640 "$etc/shadow"
    printf '%s\n' >"$etc/sudoers" \
        "# Generated by testfleet.sh: production's shape, a login with passwordless sudo." \
        "Defaults env_reset" \
        "Defaults secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"" \
        "root ALL=(ALL:ALL) ALL" \
        "$LOGIN_USER ALL=(ALL:ALL) NOPASSWD: ALL"
    chmod 0440 "$etc/sudoers"
}

# Launches one host in the background; records the unshare pid.
launch_host() {
    local dir=$1 name=$2 hd="$1/hosts/$2"
    rm -f "$hd/nspid" "$hd/nspid.start" "$hd/stopped" "$hd/sshd.pid"
    # sshd.log covers the current run only (readiness is judged on it);
    # earlier runs of a restarted host move to sshd.log.old.
    if [ -s "$hd/sshd.log" ]; then
        cat "$hd/sshd.log" >>"$hd/sshd.log.old"
        : >"$hd/sshd.log"
    fi
    (
        close_inherited_fds
        # setsid: not in our process group, so a terminal ^C aimed at a caller
        # does not half-kill the fleet. No fork happens here (we are not a group
        # leader), so $! below is the unshare process itself.
        local -a netns=()
        [ -s "$hd/netns" ] && netns=(ip netns exec "$(<"$hd/netns")")
        exec setsid "${netns[@]}" unshare --mount --pid --uts --fork --mount-proc --kill-child \
            --propagation private /bin/bash "$hd/boot.sh"
    ) </dev/null >>"$hd/namespace.log" 2>&1 &
    echo $! >"$hd/pid"
    pid_start_time $! >"$hd/pid.start"
}

host_log_tail() {
    local hd=$1
    echo "--- $hd/namespace.log (tail) ---"
    tail -n 5 "$hd/namespace.log" 2>/dev/null || true
    echo "--- $hd/sshd.log (tail) ---"
    tail -n 5 "$hd/sshd.log" 2>/dev/null || true
}

# Waits until every named host logs that it listens; records each nspid.
wait_ready() {
    local dir=$1
    shift
    local -a pending=("$@") still logs
    local -A listening
    local deadline=$((SECONDS + START_TIMEOUT)) name hd pid child log
    while [ ${#pending[@]} -gt 0 ]; do
        # One grep over all pending logs per round, not one per host.
        logs=()
        for name in "${pending[@]}"; do logs+=("$dir/hosts/$name/sshd.log"); done
        listening=()
        while IFS= read -r log; do
            [ -n "$log" ] && listening[$log]=1
        done < <(grep -lF "Server listening on " "${logs[@]}" 2>/dev/null || true)
        still=()
        for name in "${pending[@]}"; do
            hd="$dir/hosts/$name"
            read_file pid "$hd/pid"
            if [ ! -d "/proc/$pid" ]; then
                echo "testfleet: host $name (pid $pid) exited during startup" >&2
                host_log_tail "$hd" >&2
                return 1
            fi
            if ! pid_matches "$pid" "$hd/boot.sh"; then
                # The launching subshell has not exec'd yet (its command line is still ours).
                still+=("$name")
                continue
            fi
            child=""
            [ -z "${listening[$hd/sshd.log]:-}" ] \
                || read -r child 2>/dev/null <"/proc/$pid/task/$pid/children" || true
            child=${child%% *}
            if [ -n "$child" ]; then
                echo "$child" >"$hd/nspid"
                pid_start_time "$child" >"$hd/nspid.start"
            else
                still+=("$name")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        [ ${#pending[@]} -eq 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "testfleet: ${#pending[@]} host(s) not listening after ${START_TIMEOUT}s: ${pending[*]:0:10}" >&2
            host_log_tail "$dir/hosts/${pending[0]}" >&2
            return 1
        fi
        sleep 0.05
    done
}

# Stops one host: SIGKILL to unshare makes the kernel SIGKILL its child (sshd,
# PID 1 of the namespace, via --kill-child), which ends every process in it.
# (unshare --fork blocks SIGTERM and sshd as PID 1 is its only handler, so KILL is
# the one signal that reliably tears the namespace down at once.)
kill_host() {
    local hd=$1 pid nspid
    read_file pid "$hd/pid"
    read_file nspid "$hd/nspid"
    if pid_matches "$pid" "$hd/boot.sh"; then
        kill -KILL "$pid" 2>/dev/null || true
    elif pid_matches "$nspid" "$hd/sshd_config"; then
        # unshare already gone but sshd survived: stop sshd, the namespace follows.
        kill -KILL "$nspid" 2>/dev/null || true
    fi
}

# Waits (bounded) until each host's unshare and namespace PID 1 have exited.
wait_hosts_gone() {
    local hd deadline=$((SECONDS + 10)) pid pid_start nspid nspid_start
    local -a left
    while :; do
        left=()
        for hd in "$@"; do
            read_file pid "$hd/pid"
            read_file pid_start "$hd/pid.start"
            read_file nspid "$hd/nspid"
            read_file nspid_start "$hd/nspid.start"
            if pid_running_since "$pid" "$pid_start" || pid_running_since "$nspid" "$nspid_start"; then
                left+=("$hd")
            fi
        done
        [ ${#left[@]} -eq 0 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            for hd in "${left[@]}"; do
                read_file pid "$hd/pid"
                read_file nspid "$hd/nspid"
                echo "testfleet: host ${hd##*/} (pid $pid, nspid $nspid) did not exit" >&2
            done
            return 1
        fi
        set -- "${left[@]}"
        sleep 0.05
    done
}

cmd_up() {
    local dir="" count="" prefix=host owner=""
    local -a positional=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --owner) owner=${2:-}; shift 2 || usage ;;
        --owner=*) owner=${1#--owner=}; shift ;;
        -*) die "unknown option $1" ;;
        *) positional+=("$1"); shift ;;
        esac
    done
    [ ${#positional[@]} -ge 2 ] && [ ${#positional[@]} -le 3 ] || usage
    dir=${positional[0]}
    count=${positional[1]}
    prefix=${positional[2]:-host}
    [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 250 ] \
        || die "host count must be 1...250, got '$count'"
    [[ "$prefix" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
        || die "name prefix '$prefix' must be letters, digits, '.', '_' or '-'"
    [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] \
        || die "TESTFLEET_PORT must be 1...65535, got '$PORT'"
    [ -z "$owner" ] || [[ "$owner" =~ ^[0-9]+$ ]] || die "--owner needs a pid, got '$owner'"
    require_root

    mkdir -p "$dir"
    dir=$(absolute_dir "$dir")
    [ ! -e "$dir/.testfleet" ] || die "$dir already holds a fleet; run 'testfleet.sh down $dir --purge' first"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    [[ "$dir" != *[[:space:]]* ]] || die "fleet directory '$dir' must not contain whitespace (sshd_config paths)"
    validate_paths "$dir" < <(private_paths)
    touch "$dir/.testfleet"

    # From here on, any failure tears down whatever was started.
    # (The trap runs after cmd_up's locals are gone, hence the global.)
    FAILED_UP_DIR=$dir
    trap 'echo "testfleet: startup failed, stopping the partial fleet" >&2; cmd_down "$FAILED_UP_DIR" >/dev/null 2>&1 || true' EXIT

    local subnet
    subnet=$(claim_subnet "$dir")
    echo "$subnet" >"$dir/subnet"
    private_paths >"$dir/paths"

    mkdir -p "$dir/client" "$dir/hosts"
    # The login user reads its authorized_keys (and home) under DIR: let it through (mkdtemp made 0700).
    chmod 0755 "$dir"
    local ancestor=${dir%/*}
    while [ -n "$ancestor" ]; do
        [ "$(( 0$(stat -c %a "$ancestor") & 01 ))" -ne 0 ] \
            || die "$ancestor is not searchable by other users (mode $(stat -c %a "$ancestor")), so the hosts' login '$LOGIN_USER' cannot read its authorized_keys under $dir: chmod o+x $ancestor, or put the fleet elsewhere"
        ancestor=${ancestor%/*}
    done
    write_accounts "$dir"
    ssh-keygen -q -t ed25519 -N '' -C testfleet-client -f "$dir/client/id_ed25519"

    local -a names=()
    local i name
    for i in $(seq 1 "$count"); do
        names+=("$prefix-$i")
    done

    # Key generation dominates preparation; run hosts in parallel batches.
    local batch=0
    for i in "${!names[@]}"; do
        prepare_host "$dir" "${names[$i]}" "127.$subnet.$((i + 1))" &
        batch=$((batch + 1))
        if [ "$batch" -ge 32 ]; then wait; batch=0; fi
    done
    wait
    for name in "${names[@]}"; do
        [ -f "$dir/hosts/$name/boot.sh" ] || die "preparing host $name failed"
    done

    # Lists for scripts and clients.
    : >"$dir/known_hosts"
    : >"$dir/hosts.tsv"
    : >"$dir/ssh_config"
    local hd addr key_type key_data _
    for name in "${names[@]}"; do
        hd="$dir/hosts/$name"
        read_file addr "$hd/address"
        printf '%s\t%s\t%s\t%s\n' "$name" "$addr" "$PORT" "$hd/root" >>"$dir/hosts.tsv"
        for key in "$hd/ssh_host_ed25519_key.pub" "$hd/ssh_host_ecdsa_key.pub"; do
            read -r key_type key_data _ <"$key"
            echo "[$addr]:$PORT $key_type $key_data" >>"$dir/known_hosts"
        done
        printf '%s\n' >>"$dir/ssh_config" \
            "Host $name" \
            "    HostName $addr" \
            "    Port $PORT" \
            "    User $LOGIN_USER" \
            "    IdentityFile $dir/client/id_ed25519" \
            "    IdentitiesOnly yes" \
            "    UserKnownHostsFile $dir/known_hosts" \
            "    StrictHostKeyChecking yes" \
            "    BatchMode yes" \
            ""
    done
    {
        printf 'TESTFLEET_DIR=%q\n' "$dir"
        printf 'TESTFLEET_SUBNET=%q\n' "127.$subnet"
        printf 'TESTFLEET_PORT=%q\n' "$PORT"
        printf 'TESTFLEET_USER=%q\n' "$LOGIN_USER"
        printf 'TESTFLEET_KEY=%q\n' "$dir/client/id_ed25519"
        printf 'TESTFLEET_KNOWN_HOSTS=%q\n' "$dir/known_hosts"
        printf 'TESTFLEET_SSH_CONFIG=%q\n' "$dir/ssh_config"
        printf 'TESTFLEET_HOSTS=%q\n' "${names[*]}"
    } >"$dir/fleet.env"

    # Mount points must exist on the real filesystem; privilege separation needs /run/sshd.
    mkdir -p -m 0755 /run/sshd
    local path
    while read -r path; do mkdir -p "$path"; done <"$dir/paths"

    touch "$dir/up"
    for name in "${names[@]}"; do
        launch_host "$dir" "$name"
    done
    [ -z "$owner" ] || start_owner_watch "$dir" "$owner"
    wait_ready "$dir" "${names[@]}"
    trap - EXIT
    echo "testfleet: $count host(s) up in $dir (127.$subnet.1-$count, port $PORT)"
}

# Tears the fleet down when OWNER exits without calling `down` (e.g. a test
# process that crashed), so no sshd outlives its test run.
start_owner_watch() {
    local dir=$1 owner=$2 started
    started=$(pid_start_time "$owner")
    [ -n "$started" ] || die "--owner $owner: no such process"
    (
        close_inherited_fds
        exec setsid /bin/bash -c '
            owner=$1 started=$2 dir=$3 self=$4
            alive() { local s; s=$(cat /proc/$owner/stat 2>/dev/null) || return 1; s=${s##*) }; set -- $s; [ "${20}" = "$started" ]; }
            while alive && [ -e "$dir/up" ]; do sleep 1; done
            [ -e "$dir/up" ] && exec "$self" down "$dir"
            exit 0' testfleet-watch "$owner" "$started" "$dir" "$SELF"
    ) </dev/null >>"$dir/watch.log" 2>&1 &
    echo $! >"$dir/watch.pid"
}

cmd_down() {
    local dir=${1:-} purge=no
    [ $# -ge 1 ] || usage
    [ "${2:-}" = "--purge" ] && purge=yes
    [ $# -le 2 ] || usage
    if [ ! -e "$dir/.testfleet" ]; then
        # Idempotent: an already purged fleet is fine.
        [ -e "$dir" ] && die "$dir is not a test fleet directory"
        return 0
    fi
    require_root
    dir=$(absolute_dir "$dir")
    rm -f "$dir/up"
    local hd failed=0
    local -a hds=()
    for hd in "$dir"/hosts/*/; do
        [ -d "$hd" ] && hds+=("${hd%/}")
    done
    for hd in "${hds[@]+"${hds[@]}"}"; do kill_host "$hd"; done
    [ ${#hds[@]} -eq 0 ] || wait_hosts_gone "${hds[@]}" || failed=1
    local watcher
    read_file watcher "$dir/watch.pid"
    if [ -n "$watcher" ] && [ "$watcher" != "$$" ] && pid_matches "$watcher" "testfleet-watch"; then
        # KILL, not TERM: a fleet started from a Swift test inherits a signal mask with SIGTERM blocked.
        kill -KILL "$watcher" 2>/dev/null || true
    fi
    [ "$failed" -eq 0 ] || die "some hosts of $dir did not stop; subnet claim kept"
    stop_network_namespace "$dir"
    release_subnet "$dir"
    if [ "$purge" = yes ]; then
        rm -rf --one-file-system "$dir"
    fi
}

host_dir() {
    local dir=$1 name=$2
    [ -n "$name" ] || usage
    [ -d "$dir/hosts/$name" ] && [[ "$name" != */* ]] || die "no host '$name' in $dir"
    echo "$dir/hosts/$name"
}

cmd_stop_host() {
    [ $# -eq 2 ] || usage
    require_fleet "$1"
    require_root
    local dir hd
    dir=$(absolute_dir "$1")
    hd=$(host_dir "$dir" "$2")
    kill_host "$hd"
    wait_hosts_gone "$hd"
    touch "$hd/stopped"
}

cmd_start_host() {
    [ $# -eq 2 ] || usage
    require_fleet "$1"
    require_root
    local dir hd
    dir=$(absolute_dir "$1")
    hd=$(host_dir "$dir" "$2")
    [ -e "$dir/up" ] || die "fleet $dir is down"
    local pid
    read_file pid "$hd/pid"
    if pid_matches "$pid" "$hd/boot.sh"; then
        return 0
    fi
    launch_host "$dir" "$2"
    wait_ready "$dir" "$2"
}

cmd_exec() {
    [ $# -ge 3 ] || usage
    require_fleet "$1"
    require_root
    local dir hd nspid
    dir=$(absolute_dir "$1")
    hd=$(host_dir "$dir" "$2")
    shift 2
    read_file nspid "$hd/nspid"
    if ! pid_matches "$nspid" "$hd/sshd_config"; then
        echo "testfleet: host ${hd##*/} is not running" >&2
        exit 125
    fi
    exec nsenter -t "$nspid" -m -p -u -- "$@"
}

cmd_status() {
    [ $# -eq 1 ] || usage
    require_fleet "$1"
    local dir name addr port root state hd nspid
    dir=$(absolute_dir "$1")
    while IFS=$'\t' read -r name addr port root; do
        hd="$dir/hosts/$name"
        read_file nspid "$hd/nspid"
        if pid_matches "$nspid" "$hd/sshd_config"; then
            state=running
        else
            state=stopped
        fi
        printf '%s\t%s\t%s\t%s\n' "$name" "$addr" "$port" "$state"
    done <"$dir/hosts.tsv"
}

# The fleet's private network namespace (one per fleet, named after its subnet).
network_namespace_name() {
    local subnet
    read_file subnet "$1/subnet"
    echo "testfleet-${subnet//./-}"
}

# Stops the bridges (each its own process group) and deletes the namespace.
stop_network_namespace() {
    local dir=$1 hd pid ns
    for hd in "$dir"/hosts/*/; do
        hd=${hd%/}
        read_file pid "$hd/bridge.pid"
        if [ -n "$pid" ] && pid_matches "$pid" "$hd/bridge.sh"; then
            # KILL, not TERM: started from a Swift test, socat inherits a mask that blocks SIGTERM and
            # would outlive the fleet, holding its address.
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
        rm -f "$hd/bridge.pid"
    done
    read_file ns "$dir/netns"
    if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
        ip netns del "$ns" 2>/dev/null || true
    fi
    rm -f "$dir/netns"
}

cmd_isolate() {
    [ $# -ge 2 ] && [ $# -le 3 ] || usage
    require_fleet "$1"
    require_root
    local bridge=no
    if [ $# -eq 3 ]; then
        [ "$3" = "--bridge" ] || usage
        bridge=yes
    fi
    command -v ip >/dev/null || die "missing ip (install iproute2)"
    [ "$bridge" = no ] || command -v socat >/dev/null || die "missing socat (apt-get install socat)"
    local dir hd ns addr port
    dir=$(absolute_dir "$1")
    hd=$(host_dir "$dir" "$2")
    [ -e "$dir/up" ] || die "fleet $dir is down"
    ns=$(network_namespace_name "$dir")
    if [ ! -e "/run/netns/$ns" ]; then
        ip netns add "$ns" || die "cannot create network namespace $ns"
        ip -n "$ns" link set lo up
        echo "$ns" >"$dir/netns"
    fi
    read_file addr "$hd/address"
    read_file port "$hd/port"
    kill_host "$hd"
    wait_hosts_gone "$hd"
    echo "$ns" >"$hd/netns"
    launch_host "$dir" "$2"
    wait_ready "$dir" "$2"
    [ "$bridge" = yes ] || return 0
    # Inside the namespace 127.0.0.0/8 is that namespace's own loopback, so the host keeps its
    # address there; the bridge listens on the same address outside and connects inside.
    printf '#!/bin/bash\nexec ip netns exec %q socat STDIO TCP:%q:%q,nodelay\n' "$ns" "$addr" "$port" >"$hd/bridge.sh"
    chmod +x "$hd/bridge.sh"
    (
        close_inherited_fds
        exec setsid socat "TCP-LISTEN:$port,bind=$addr,reuseaddr,fork,nodelay" "EXEC:$hd/bridge.sh"
    ) </dev/null >>"$hd/bridge.log" 2>&1 &
    echo $! >"$hd/bridge.pid"
    local deadline=$((SECONDS + 10))
    until [ -n "$(ss -Hltn "src $addr:$port" 2>/dev/null)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "bridge for ${hd##*/} not listening on $addr:$port"
        sleep 0.05
    done
}

# The isolated host's namespace, or die: faults are made only inside the fleet's own network
# namespace, never on this machine's loopback.
isolated_host() {
    local hd=$1 ns
    read_file ns "$hd/netns"
    [ -n "$ns" ] && [ -e "/run/netns/$ns" ] || die "host ${hd##*/} is not isolated (testfleet.sh isolate first)"
    echo "$ns"
}

cmd_drop() {
    [ $# -eq 3 ] || usage
    require_fleet "$2"
    require_root
    command -v iptables >/dev/null || die "missing iptables (apt-get install iptables)"
    local action=$1 dir hd ns addr port
    dir=$(absolute_dir "$2")
    hd=$(host_dir "$dir" "$3")
    ns=$(isolated_host "$hd")
    read_file addr "$hd/address"
    read_file port "$hd/port"
    local -a rule=(INPUT -d "$addr" -p tcp --dport "$port" -j DROP)
    if [ "$action" = drop ]; then
        ip netns exec "$ns" iptables -w -C "${rule[@]}" 2>/dev/null || ip netns exec "$ns" iptables -w -I "${rule[@]}"
    else
        while ip netns exec "$ns" iptables -w -D "${rule[@]}" 2>/dev/null; do :; done
    fi
}

cmd_stall() {
    [ $# -eq 3 ] || usage
    require_fleet "$2"
    require_root
    local action=$1 dir hd pid
    dir=$(absolute_dir "$2")
    hd=$(host_dir "$dir" "$3")
    read_file pid "$hd/bridge.pid"
    [ -n "$pid" ] && pid_matches "$pid" "$hd/bridge.sh" || die "host ${hd##*/} has no bridge (testfleet.sh isolate --bridge first)"
    # The bridge is its own process group (setsid): the listener, its forks and the socats inside.
    if [ "$action" = stall ]; then kill -STOP -- "-$pid"; else kill -CONT -- "-$pid"; fi
}

main() {
    [ $# -ge 1 ] || usage
    local command=$1
    shift
    case "$command" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    stop-host) cmd_stop_host "$@" ;;
    start-host) cmd_start_host "$@" ;;
    exec) cmd_exec "$@" ;;
    status) cmd_status "$@" ;;
    isolate) cmd_isolate "$@" ;;
    drop | undrop) cmd_drop "$command" "$@" ;;
    stall | resume) cmd_stall "$command" "$@" ;;
    -h | --help | help) usage ;;
    *) echo "testfleet: unknown command '$command'" >&2; usage ;;
    esac
}

main "$@"
