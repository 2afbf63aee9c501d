#!/bin/bash
# A private, throw-away PuppetDB on loopback for govuk-fab's PuppetDB inventory tests.
#
#   scripts/puppetdb.sh up      install (if needed), start PostgreSQL + PuppetDB, load test nodes
#   scripts/puppetdb.sh env     print the export lines tests need (after `up`)
#   scripts/puppetdb.sh status  say what is running
#   scripts/puppetdb.sh down    stop both (by recorded pid); keeps the state directory
#   scripts/puppetdb.sh purge   down, then delete the state directory
#
# Nothing of the machine's own setup is used or changed: PostgreSQL runs as its own cluster in
# $STATE/pg on 127.0.0.1:$PG_PORT (socket in $STATE/run), PuppetDB reads its own config dir
# $STATE/conf.d and listens on 127.0.0.1 only. The Debian package is installed if missing, with
# service start-up suppressed. Needs root. Idempotent: `up` twice leaves one of each running.
#
# Settings (environment): PUPPETDB_STATE_DIR (default /var/tmp/govuk-fab-puppetdb),
# PUPPETDB_PG_PORT (55432), PUPPETDB_HTTP_PORT (58080), PUPPETDB_HTTPS_PORT (58081),
# PUPPETDB_START_TIMEOUT seconds (300), PUPPETDB_JAVA_ARGS.
set -euo pipefail

STATE=${PUPPETDB_STATE_DIR:-/var/tmp/govuk-fab-puppetdb}
PG_PORT=${PUPPETDB_PG_PORT:-55432}
HTTP_PORT=${PUPPETDB_HTTP_PORT:-58080}
HTTPS_PORT=${PUPPETDB_HTTPS_PORT:-58081}
START_TIMEOUT=${PUPPETDB_START_TIMEOUT:-300}
PG_BIN=${PUPPETDB_PG_BIN:-/usr/lib/postgresql/15/bin}
PDB_JAR=/usr/share/puppetdb/puppetdb.jar
BASE_URL="http://127.0.0.1:$HTTP_PORT"

log() { printf 'puppetdb.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# A pid file counts only if that pid is still a java running puppetdb (pids get reused).
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && grep -qa puppetdb "/proc/$(cat "$1")/cmdline"; }

install_packages() {
    if dpkg-query -W -f='${Status}' puppetdb 2>/dev/null | grep -q 'install ok installed' \
        && [ -x "$PG_BIN/initdb" ] && command -v openssl >/dev/null && command -v curl >/dev/null; then
        return
    fi
    log "installing puppetdb (and postgresql, openssl, curl if missing) ..."
    local started=$SECONDS made_policy=0
    # Keep maintainer scripts from starting the system-wide services: we run private instances.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        puppetdb postgresql-15 postgresql-contrib openssl curl >"$STATE/apt.log" 2>&1 || rc=$?
    [ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" -eq 0 ] || die "apt-get install failed (see $STATE/apt.log)"
    log "installed in $((SECONDS - started)) s"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg() { runuser -u postgres -- "$@"; }
psql_admin() { pg env PGOPTIONS=--client-min-messages=warning "$PG_BIN/psql" -h "$STATE/run" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

start_postgres() {
    mkdir -p "$STATE/run" "$STATE/pglog"
    chown postgres:postgres "$STATE/run" "$STATE/pglog"
    chmod 700 "$STATE/run"
    if [ ! -f "$STATE/pg/PG_VERSION" ]; then
        mkdir -p "$STATE/pg"
        chown postgres:postgres "$STATE/pg"
        # Trust only on the socket, which lives in a directory only postgres (and root) can enter;
        # TCP on 127.0.0.1 needs the generated password.
        pg "$PG_BIN/initdb" -D "$STATE/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 >"$STATE/pglog/initdb.log" 2>&1 || die "initdb failed (see $STATE/pglog/initdb.log)"
    fi
    if pg "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
        return
    fi
    port_in_use "$PG_PORT" && die "port $PG_PORT is taken; set PUPPETDB_PG_PORT"
    pg "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pglog/postgres.log" -w -t 60 \
        -o "-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$STATE/run" \
        start >/dev/null || die "PostgreSQL did not start (see $STATE/pglog/postgres.log)"
}

create_database() {
    if [ ! -s "$STATE/db-password" ]; then
        (umask 077; openssl rand -hex 16 > "$STATE/db-password")
    fi
    local password
    password=$(cat "$STATE/db-password")
    if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'puppetdb'")" != 1 ]; then
        psql_admin -c "CREATE ROLE puppetdb LOGIN PASSWORD '$password'"
    fi
    if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'puppetdb'")" != 1 ]; then
        psql_admin -c "CREATE DATABASE puppetdb OWNER puppetdb ENCODING 'UTF8' TEMPLATE template0"
    fi
    # PuppetDB needs pg_trgm but must not be a superuser to create it.
    psql_admin -d puppetdb -c "CREATE EXTENSION IF NOT EXISTS pg_trgm"
}

make_certificates() {
    local ssl="$STATE/ssl"
    [ -f "$ssl/unlisted-client.key" ] && return
    mkdir -p "$ssl"
    (
        cd "$ssl"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=govuk-fab test CA" \
            -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=govuk-fab-client" -keyout client.key -out client.csr 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile client.ext -out client.pem 2>/dev/null
        # A second, untrusted CA signs a client cert that PuppetDB must refuse.
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rogue CA" \
            -keyout rogue-ca.key -out rogue-ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=rogue-client" -keyout rogue-client.key -out rogue-client.csr 2>/dev/null
        openssl x509 -req -in rogue-client.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -days 3650 \
            -extfile client.ext -out rogue-client.pem 2>/dev/null
        # Signed by the right CA, but its CN is not in PuppetDB's certificate-allowlist.
        openssl req -newkey rsa:2048 -nodes -subj "/CN=unlisted-client" -keyout unlisted-client.key \
            -out unlisted-client.csr 2>/dev/null
        openssl x509 -req -in unlisted-client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile client.ext -out unlisted-client.pem 2>/dev/null
        rm -f ./*.csr ./*.ext
        chmod 644 ./*.pem
    )
}

write_config() {
    local conf="$STATE/conf.d"
    mkdir -p "$conf" "$STATE/var" "$STATE/log"
    cat > "$conf/config.ini" <<EOF
[global]
vardir = $STATE/var
logging-config = $STATE/logback.xml

[puppetdb]
# Over HTTPS only this client certificate's CN may talk to PuppetDB.
certificate-allowlist = $STATE/allowlist

[command-processing]
threads = 2
EOF
    echo govuk-fab-client > "$STATE/allowlist"
    (umask 077; cat > "$conf/database.ini" <<EOF
[database]
subname = //127.0.0.1:$PG_PORT/puppetdb
username = puppetdb
password = $(cat "$STATE/db-password")
EOF
)
    cat > "$conf/jetty.ini" <<EOF
[jetty]
host = 127.0.0.1
port = $HTTP_PORT
ssl-host = 127.0.0.1
ssl-port = $HTTPS_PORT
ssl-key = $STATE/ssl/server.key
ssl-cert = $STATE/ssl/server.pem
ssl-ca-cert = $STATE/ssl/ca.pem
client-auth = need
EOF
    # Debian's auth.conf denies everything but /status; this instance is a loopback test server.
    cat > "$conf/auth.conf" <<'EOF'
authorization: {
    version: 1
    rules: [
        {
            match-request: { path: "/", type: path }
            allow-unauthenticated: true
            sort-order: 500
            name: "govuk-fab test instance: allow all"
        }
    ]
}
EOF
    cat > "$STATE/logback.xml" <<EOF
<configuration>
    <appender name="F1" class="ch.qos.logback.core.FileAppender">
        <file>$STATE/log/puppetdb.log</file>
        <append>true</append>
        <encoder><pattern>%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX} %-5p [%c{2}] %m%n</pattern></encoder>
    </appender>
    <root level="info"><appender-ref ref="F1" /></root>
</configuration>
EOF
}

status_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true; }

start_puppetdb() {
    if pid_alive "$STATE/puppetdb.pid"; then
        return
    fi
    port_in_use "$HTTP_PORT" && die "port $HTTP_PORT is taken; set PUPPETDB_HTTP_PORT"
    port_in_use "$HTTPS_PORT" && die "port $HTTPS_PORT is taken; set PUPPETDB_HTTPS_PORT"
    local java_args
    # C1-only JIT and the serial GC: PuppetDB's start is mostly compiling Clojure sources, where
    # the optimising JIT costs more than it gains (override with PUPPETDB_JAVA_ARGS).
    java_args=${PUPPETDB_JAVA_ARGS:-"-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}
    local started=$SECONDS
    # setsid: its own process group, so `down` can stop exactly what was started here.
    # shellcheck disable=SC2086
    setsid /usr/bin/java $java_args -Djava.security.egd=/dev/urandom \
        -cp "$PDB_JAR" clojure.main -m puppetlabs.puppetdb.core services \
        --config "$STATE/conf.d" --bootstrap-config /etc/puppetdb/bootstrap.cfg \
        >"$STATE/log/stdout.log" 2>&1 < /dev/null &
    echo $! > "$STATE/puppetdb.pid"
    log "PuppetDB starting (pid $(cat "$STATE/puppetdb.pid")), waiting up to ${START_TIMEOUT}s ..."
    while true; do
        if [ "$(status_code "$BASE_URL/status/v1/services/puppetdb-status")" = 200 ]; then
            break
        fi
        pid_alive "$STATE/puppetdb.pid" || die "PuppetDB exited during start-up (see $STATE/log/)"
        if [ $((SECONDS - started)) -ge "$START_TIMEOUT" ]; then
            die "PuppetDB not ready after ${START_TIMEOUT}s (see $STATE/log/)"
        fi
        sleep 1
    done
    local took=$((SECONDS - started))
    echo "$took" > "$STATE/start-seconds"
    log "PuppetDB ready after ${took}s"
}

# --- test data --------------------------------------------------------------------------------

# resource JSON for a Class resource
class_resource() {
    printf '{"type":"Class","title":"%s","exported":false,"tags":["class"],"parameters":{}}' "$1"
}

# catalog CERTNAME CLASS...
catalog_json() {
    local certname=$1; shift
    local resources edges="" class
    resources=$(class_resource Settings),$(class_resource main)
    for class in "$@"; do
        resources="$resources,$(class_resource "$class")"
        edges="$edges${edges:+,}{\"source\":{\"type\":\"Class\",\"title\":\"main\"},\"target\":{\"type\":\"Class\",\"title\":\"$class\"},\"relationship\":\"contains\"}"
    done
    printf '{"certname":"%s","version":"1","environment":"production","transaction_uuid":"%s","catalog_uuid":"%s","producer_timestamp":"%s","producer":"puppet.test","code_id":null,"job_id":null,"resources":[%s],"edges":[%s]}' \
        "$certname" "$(cat /proc/sys/kernel/random/uuid)" "$(cat /proc/sys/kernel/random/uuid)" \
        "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$resources" "$edges"
}

# facts_json CERTNAME IP NODE_CLASS
facts_json() {
    printf '{"certname":"%s","environment":"production","producer_timestamp":"%s","producer":"puppet.test","values":{"fqdn":"%s","hostname":"%s","ipaddress":"%s","node_class":"%s","aws_migration":"%s","osfamily":"Debian"}}' \
        "$1" "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$1" "${1%%.*}" "$2" "$3" "$3"
}

post_command() {
    local command=$1 version=$2 certname=$3 body=$4 code
    code=$(curl -s -o "$STATE/last-command.out" -w '%{http_code}' --max-time 30 -X POST \
        -H 'Content-Type: application/json' --data-binary "$body" \
        "$BASE_URL/pdb/cmd/v1?command=$command&version=$version&certname=$certname")
    [ "$code" = 200 ] || die "$command for $certname: HTTP $code: $(cat "$STATE/last-command.out")"
}

# node certname ip node_class classes...
add_node() {
    local certname=$1 ip=$2 node_class=$3; shift 3
    post_command replace_facts 5 "$certname" "$(facts_json "$certname" "$ip" "$node_class")"
    post_command replace_catalog 9 "$certname" "$(catalog_json "$certname" "$@")"
}

fill() {
    local d=test.govuk.internal
    add_node "cache-1.$d" 10.1.0.11 cache Gor Govuk::Node::S_cache Router::Gor
    add_node "cache-2.$d" 10.1.0.12 cache Gor Govuk::Node::S_cache Router::Gor
    add_node "cache-3.$d" 10.1.0.13 cache Gor Govuk::Node::S_cache Router::Gor
    add_node "bouncer-1.$d" 10.1.0.21 bouncer Govuk_bouncer::Gor Gor Govuk::Node::S_bouncer
    add_node "backend-1.$d" 10.1.0.31 backend Govuk::Node::S_backend Govuk::Apps::Publisher
    add_node "frontend-1.$d" 10.1.0.41 frontend Govuk::Node::S_frontend Govuk::Apps::Frontend
    # Facts are reported by the nodes themselves: forged-1 claims an address that smuggles a
    # second host line; govuk-fab must leave it out and keep trusted-1.
    add_node "trusted-1.$d" 10.1.0.51 trust Trust_test
    add_node "forged-1.$d" '10.0.0.5 -\nprod-db-1 10.9.9.9' trust Trust_test
    # Commands are processed asynchronously; wait (bounded) until every catalogue is queryable.
    local query='["and",["=","type","Class"],["=","title","Settings"]]' waited=0 count
    while true; do
        count=$(curl -s --max-time 5 -G "$BASE_URL/pdb/query/v4/resources" --data-urlencode "query=$query" \
            | grep -o '"certname"' | wc -l || true)
        [ "$count" -ge 8 ] && break
        [ "$waited" -ge 60 ] && die "only $count of 8 catalogues stored after 60s"
        sleep 1
        waited=$((waited + 1))
    done
    log "8 nodes loaded"
}

print_env() {
    cat <<EOF
export GOVUK_FAB_PUPPETDB_URL=$BASE_URL
export GOVUK_FAB_PUPPETDB_TLS_URL=https://127.0.0.1:$HTTPS_PORT
export GOVUK_FAB_PUPPETDB_CA=$STATE/ssl/ca.pem
export GOVUK_FAB_PUPPETDB_CLIENT_CERT=$STATE/ssl/client.pem
export GOVUK_FAB_PUPPETDB_CLIENT_KEY=$STATE/ssl/client.key
export GOVUK_FAB_PUPPETDB_ROGUE_CERT=$STATE/ssl/rogue-client.pem
export GOVUK_FAB_PUPPETDB_ROGUE_KEY=$STATE/ssl/rogue-client.key
export GOVUK_FAB_PUPPETDB_UNLISTED_CERT=$STATE/ssl/unlisted-client.pem
export GOVUK_FAB_PUPPETDB_UNLISTED_KEY=$STATE/ssl/unlisted-client.key
EOF
}

stop_pid_group() {
    local pidfile=$1 name=$2 pid
    pid_alive "$pidfile" || { rm -f "$pidfile"; return; }
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still running after 30s; killing"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    fi
    rm -f "$pidfile"
}

cmd=${1:-}
case "$cmd" in
    up)
        require_root
        mkdir -p "$STATE"
        chmod 755 "$STATE"
        install_packages
        start_postgres
        create_database
        make_certificates
        write_config
        start_puppetdb
        fill
        print_env > "$STATE/env"
        print_env
        ;;
    env)
        [ -f "$STATE/env" ] || die "not up (no $STATE/env)"
        cat "$STATE/env"
        ;;
    status)
        if pid_alive "$STATE/puppetdb.pid"; then
            echo "puppetdb: running, pid $(cat "$STATE/puppetdb.pid"), $BASE_URL" \
                "(status HTTP $(status_code "$BASE_URL/status/v1/services"))"
        else
            echo "puppetdb: stopped"
        fi
        if [ -f "$STATE/pg/PG_VERSION" ] && pg "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
            echo "postgresql: running, 127.0.0.1:$PG_PORT, data $STATE/pg"
        else
            echo "postgresql: stopped"
        fi
        [ -f "$STATE/start-seconds" ] && echo "last PuppetDB start took $(cat "$STATE/start-seconds")s"
        true
        ;;
    down)
        require_root
        stop_pid_group "$STATE/puppetdb.pid" PuppetDB
        if [ -f "$STATE/pg/PG_VERSION" ] && pg "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
            pg "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w -t 60 stop >/dev/null
        fi
        log "stopped"
        ;;
    purge)
        "$0" down
        rm -rf -- "$STATE"
        ;;
    *)
        echo "usage: $0 up|env|status|down|purge" >&2
        exit 2
        ;;
esac
