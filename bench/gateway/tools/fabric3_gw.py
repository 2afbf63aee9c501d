#!/usr/bin/env python3
"""Fabric 3.2 through one jump host, for bench/gateway/run.sh.

One gateway Connection, opened before the pool starts, is every host's `gateway=`: each host is
a direct-tcpip channel on that one paramiko transport. A ThreadPoolExecutor(--par) runs the
hosts. Host keys (gateway's too) are checked against --known-hosts with RejectPolicy.
Prints "FLEETOK host" per host that exited 0 and printed exactly "ok".
"""
import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection
from paramiko import RejectPolicy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts-file", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("--gateway", required=True, help="HOST:PORT")
    ap.add_argument("--port", type=int, default=2222)
    ap.add_argument("--par", type=int, default=20)
    ap.add_argument("--cmd", default="echo ok")
    a = ap.parse_args()
    hosts = [h.strip() for h in open(a.hosts_file) if h.strip()]
    kwargs = {"key_filename": a.key, "allow_agent": False, "look_for_keys": False}

    def strict(c):
        c.client.load_host_keys(a.known_hosts)
        c.client.set_missing_host_key_policy(RejectPolicy())
        return c

    gw_host, gw_port = a.gateway.rsplit(":", 1)
    gateway = strict(Connection(gw_host, port=int(gw_port), user="root", connect_kwargs=kwargs))
    gateway.open()
    ok = 0

    def one(h):
        c = strict(Connection(h, port=a.port, user="root", connect_kwargs=kwargs, gateway=gateway))
        try:
            return h, c.run(a.cmd, hide=True, warn=True)
        except Exception as e:
            return h, e
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=a.par) as ex:
        for h, res in ex.map(one, hosts):
            if not isinstance(res, Exception) and res.exited == 0 and res.stdout.strip() == "ok":
                ok += 1
                print("FLEETOK", h, flush=True)
            else:
                print("FLEETFAIL", h, repr(res)[:300], flush=True)
    gateway.close()
    print(f"RESULT ok={ok} fail={len(hosts) - ok}")
    return 0 if ok == len(hosts) else 1


if __name__ == "__main__":
    sys.exit(main())
