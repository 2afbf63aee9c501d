# govuk-fab as a tool of ../shared/bench/peers.sh (sourced through PEERS_EXTRA):
#
#   PEERS_EXTRA=$PWD/bench/peers-govuk-fab.sh ../shared/bench/peers.sh 10 50 200
#
# Contract (see peers.sh): tool_<id> N PAR INV sets LABEL, CMD, OK_RE, PARDESC.
GOVUK_FAB_ROOT=${GOVUK_FAB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ALL_TOOLS="$ALL_TOOLS govuk_fab"

setup_govuk_fab() {
  [[ -x $GOVUK_FAB_ROOT/.build/release/govuk-fab ]] ||
    (cd "$GOVUK_FAB_ROOT" && swift build -c release --product govuk-fab >&2)
}

tool_govuk_fab() { local n=$1 par=$2 inv=$3
  LABEL="govuk-fab (Swift, libssh2)"
  local bin=$GOVUK_FAB_ROOT/.build/release/govuk-fab
  [[ -x $bin ]] || { SKIP_WHY="govuk-fab not built"; return 1; }
  # An inventory for exactly these N hosts, the fleet's key and known_hosts.
  local yml=$inv/govuk-fab.yml i=0 addr
  {
    echo "name: bench"
    echo "ssh: {user: root, port: 2222, identity_files: [$FLEET_DIR/keys/client_ed25519], known_hosts: [$FLEET_DIR/known_hosts], connect_timeout: 30s}"
    echo "parallelism: $par"
    echo "confirm_changes: false"
    echo "hosts:"
    while read -r addr; do
      i=$((i + 1))
      echo "  - {name: h$i, address: $addr, puppet_classes: [bench]}"
    done <"$inv/hosts.txt"
  } >"$yml"
  CMD=(env "XDG_STATE_HOME=$FLEET_DIR/govuk-fab-state" SSH_AUTH_SOCK= "$bin" --inventory "$yml" -P "$par" bench all "do:$REMOTE_CMD")
  OK_RE='^\[(h[0-9]+)\] out: ok$'
  PARDESC="-P $par"
}
