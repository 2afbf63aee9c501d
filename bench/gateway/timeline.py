#!/usr/bin/env python3
"""Where a host connection's time goes, from a capture in front of the hosts' sshd (made by
bench/gateway/run.sh timeline): every host connection is cut into turns, and each turn's time is
put on the server's side (from the client's data to the host's answer: the host sshd working,
waiting for CPU) or the client's side (from the host's data to the client's next data: the hosts'
relay, the gateway, the client↔gateway delay, and the client itself).

The client's side of a turn cannot be shorter than the round trip to the client (RTT + the hosts'
1 ms); what it takes beyond that is "excess": time spent waiting in the gateway, the relays or the
client, not on the wire.

  timeline.py --rtt-ms 30 HOSTS.pcap     -> one JSON line: per-connection medians and totals
"""
import argparse
import json
import re
import statistics
import subprocess

LINE = re.compile(r"^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\].*?length (\d+)")


def flows(pcap, server_port):
    out = subprocess.run(["tcpdump", "-r", pcap, "-tt", "-nn"], capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        t, sa, sp, da, dp, flags, length = m.groups()
        t, sp, dp, length = float(t), int(sp), int(dp), int(length)
        if dp == server_port:
            key, from_client = (sa, sp, da), True
        elif sp == server_port:
            key, from_client = (da, dp, sa), False
        else:
            continue
        if "S" in flags and from_client:
            result[key] = []
        if key in result:
            result[key].append((t, from_client, length, flags))
    return result


def analyse(packets, rtt_s):
    """Turns, server time, client time and excess of one connection."""
    start = packets[0][0]
    end = packets[-1][0]
    server_s = client_s = excess_s = 0.0
    turns = 0
    last_side = None  # side of the last data packet
    last_t = start
    for t, from_client, length, flags in packets:
        if length == 0:
            continue
        if last_side is not None and from_client != last_side:
            gap = t - last_t
            if from_client:
                client_s += gap
                excess_s += max(0.0, gap - rtt_s)
                turns += 1
            else:
                server_s += gap
        last_side, last_t = from_client, t
    return {"duration": end - start, "server": server_s, "client": client_s, "excess": excess_s, "turns": turns,
            "start": start}


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--server-port", type=int, default=2222)
    ap.add_argument("pcap")
    a = ap.parse_args()
    rtt_s = (a.rtt_ms + 1.0) / 1000.0
    rows = [analyse(p, rtt_s) for p in flows(a.pcap, a.server_port).values() if len(p) > 3]
    if not rows:
        print(json.dumps({"connections": 0}))
        return
    first = min(r["start"] for r in rows)
    summary = {"connections": len(rows),
               "span_s": round(max(r["start"] + r["duration"] for r in rows) - first, 3),
               "first_syn_s_p50": round(statistics.median(r["start"] - first for r in rows), 3)}
    for k in ("duration", "server", "client", "excess"):
        summary[f"{k}_s_p50"] = round(statistics.median(r[k] for r in rows), 3)
        summary[f"{k}_s_p90"] = round(pct([r[k] for r in rows], 0.9), 3)
    summary["turns_p50"] = statistics.median(r["turns"] for r in rows)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
