#!/usr/bin/env python3
"""parallel-ssh 2.16 (libssh2 native client) through a jump host, for bench/gateway/run.sh.

Prints "FLEETOK host" for every host whose command exited 0 and printed exactly "ok".
proxy_host/proxy_port/proxy_user/proxy_pkey are parallel-ssh's own gateway settings;
pool_size bounds the hosts in flight. parallel-ssh checks no host keys.
"""
import argparse
import sys

from pssh.clients import ParallelSSHClient


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts-file", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, default=2222)
    ap.add_argument("--proxy", required=True, help="HOST:PORT of the jump host")
    ap.add_argument("--par", type=int, default=20)
    ap.add_argument("--cmd", default="echo ok")
    a = ap.parse_args()
    hosts = [h.strip() for h in open(a.hosts_file) if h.strip()]
    proxy_host, proxy_port = a.proxy.rsplit(":", 1)
    client = ParallelSSHClient(
        hosts, user="root", port=a.port, pkey=a.key, pool_size=a.par, num_retries=1, timeout=60,
        allow_agent=False, identity_auth=False,
        proxy_host=proxy_host, proxy_port=int(proxy_port), proxy_user="root", proxy_pkey=a.key)
    output = client.run_command(a.cmd, stop_on_errors=False)
    client.join(output)
    ok = 0
    for h in output:
        if h.exception is None:
            lines = list(h.stdout)
            if h.exit_code == 0 and lines == ["ok"]:
                ok += 1
                print("FLEETOK", h.host, flush=True)
                continue
            print("FLEETFAIL", h.host, h.exit_code, lines[:3], flush=True)
        else:
            print("FLEETFAIL", h.host, repr(h.exception)[:300], flush=True)
    print(f"RESULT ok={ok} fail={len(hosts) - ok}")
    return 0 if ok == len(hosts) else 1


if __name__ == "__main__":
    sys.exit(main())
