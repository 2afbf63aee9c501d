#!/usr/bin/env bash
# Installs the Debian packages govuk-fab and goreplay need to build, test and
# run the demo. Idempotent: asks apt only for what is missing.
set -euo pipefail

packages=(
  libssh2-1-dev        # the SSH transport's C library
  libpcap-dev          # goreplay live capture
  openssh-server       # the test and demo fleet's sshd
  openssh-client       # ssh-keygen, ssh-agent, ssh-add for fixtures
  sudo                 # sdo runs commands through sudo -n
  procps               # pgrep/ps on fleet hosts
  util-linux           # unshare/nsenter for per-host views
  monitoring-plugins-basic  # the real check_procs, compared in tests
  wrk                  # load for benchmarks
  tcpdump              # capture debugging
  python3              # demo HTTP apps
  socat                # bridges into isolated test-fleet network namespaces (gateway tests)
  curl                 # demo traffic
  iproute2             # ip netns for gateway tests
  iptables             # packet drops inside the test fleet's own network namespace (dead-link tests)
  time                 # /usr/bin/time -v for bench/output-flood.sh
  xxd                  # the shell example middleware in the goreplay middleware tests
  openssl              # certificates for the goreplay TLS tests
  chromium             # headless browser for the goreplay report HTML test
  python3-prometheus-client  # real Prometheus text parser for the goreplay --metrics test
  gzip                 # .gor.gz fixtures for the goreplay report test; gzip -t/zcat in the .gz tests
  zlib1g-dev           # zlib headers for compress-nio (goreplay's .gor.gz input and output)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p /run/sshd 2>/dev/null || true
