#!/usr/bin/env python3
"""Counts the round trips ("client turns") of SSH connections in tcpdump captures made by
bench/gateway/run.sh turns.

Both captures are taken in the fleet namespace, where the whole client↔gateway delay sits on the
client's side: a packet the client sends in answer to one it received shows up at least one RTT
after it. A *turn* is a data packet from the connection's client side that is the first one after
data (or the SYN-ACK) from the server side and arrives at least RTT/2 after it: the client was
waiting for the server. The first turn of a host connection is the tunnel's channel open (the
client sends its banner only once the gateway confirmed the channel); the first turn of a gateway
connection is its TCP handshake.

  turns.py --rtt-ms 30 --host 127.0.1.1 --hosts 10 HOSTS.pcap GATEWAY.pcap   -> one JSON line
  turns.py --render RESULTS.tsv --rtt-ms 30                                  -> markdown table
"""
import argparse
import json
import re
import subprocess
import sys

LINE = re.compile(r"^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\].*?length (\d+)")


def packets(pcap):
    out = subprocess.run(["tcpdump", "-r", pcap, "-tt", "-nn"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            t, sa, sp, da, dp, flags, length = m.groups()
            yield float(t), (sa, int(sp)), (da, int(dp)), flags, int(length)


def connections(pcap, server_port):
    """Flows keyed by the client's (addr, port), in order of their SYN."""
    flows = {}
    for t, src, dst, flags, length in packets(pcap):
        if dst[1] == server_port:
            key, from_client = src, True
        elif src[1] == server_port:
            key, from_client = dst, False
        else:
            continue
        if key not in flows:
            if not (from_client and "S" in flags):
                continue  # started before the capture
            flows[key] = []
        flows[key].append((t, from_client, flags, length))
    return list(flows.values())


def turns(flow, rtt_s):
    count, last_server, waiting = 0, None, False
    for t, from_client, flags, length in flow:
        if not from_client and (length > 0 or ("S" in flags and "." in flags)):
            last_server, waiting = t, True
        elif from_client and length > 0:
            if waiting and t - last_server >= rtt_s / 2:
                count += 1
            waiting = False
    return count


def measure(a):
    rtt = a.rtt_ms / 1000
    host_flows = connections(a.pcaps[0], 2222)
    gw_flows = connections(a.pcaps[1], 2200)
    r = {"host_connections": len(host_flows), "gateway_connections": len(gw_flows)}
    if host_flows:
        f = host_flows[0]
        r["host_turns"] = turns(f, rtt)
        r["host_conn_ms"] = round(1000 * (f[-1][0] - f[0][0]), 1)
    if gw_flows:
        r["gateway_turns_first"] = turns(gw_flows[0], rtt)
    # one gateway connection per host: it carries the host's whole session, so its turns are the
    # host's; a shared gateway carries every host, so the host link gives the per-host count
    if len(gw_flows) >= a.hosts:
        r["per_host_turns"], r["per_host_turns_from"] = r.get("gateway_turns_first"), "its own gateway connection"
    else:
        r["per_host_turns"], r["per_host_turns_from"] = r.get("host_turns"), "gateway↔host link"
    return r


def render(a):
    print(f"| tool | round trips per host (at {a.rtt_ms:g} ms) | counted on | gateway connections for 10 hosts | turns of the first gateway connection | host connection time on the gateway↔host link ms |")
    print("|---|---:|---|---:|---:|---:|")
    for line in open(a.render):
        tool, label, blob = line.rstrip("\n").split("\t")
        r = json.loads(blob)
        print(f"| {label} | {r.get('per_host_turns')} | {r.get('per_host_turns_from')} | {r['gateway_connections']} | "
              f"{r.get('gateway_turns_first', '-')} | {r.get('host_conn_ms', '-')} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--host")
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--render")
    ap.add_argument("pcaps", nargs="*")
    a = ap.parse_args()
    if a.render:
        render(a)
    else:
        print(json.dumps(measure(a)))


if __name__ == "__main__":
    sys.exit(main())
