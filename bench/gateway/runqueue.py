#!/usr/bin/env python3
"""Run-queue wait of the bench's processes, from a `perf record` of scheduler events.

    runqueue.py --perf-data FILE --wall-s S --group NAME=PID[,PID...] ... [--per-host NAME]

The data must hold sched:sched_switch, sched:sched_wakeup, sched:sched_wakeup_new and
sched:sched_process_fork for every CPU (`perf record -a`). A task waits on a run queue from the
moment it becomes runnable (woken, or switched out while still runnable: preempted) until it is
switched in; its run time is from switch-in to switch-out. Every task forked (process or thread)
by a group's root PIDs, or by their descendants, during the recording belongs to that group;
tasks in no group are "other" (other engineers' builds, perf itself, the kernel's threads).

Prints one JSON line: per group the summed run-queue wait and run time (s), tasks seen, and the
wait divided by the wall time (the mean number of the group's tasks waiting for a CPU). With
--per-host NAME, each root PID of group NAME is one host: the median and 90th percentile over
hosts of the wait and run time of the host's whole process tree (its listener, the connection's
sshd processes, the remote shell), and the group split into NAME:sshd and NAME:shell (every task
whose last name was not sshd: the remote command, and anything it left running, detached or not).
"""
import argparse
import json
import re
import statistics
import subprocess
import sys

SWITCH = re.compile(r"prev_comm=.*? prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=.*? next_pid=(\d+)")
WAKE = re.compile(r" pid=(\d+) prio=")
FORK = re.compile(r" pid=(\d+) child_comm=.*? child_pid=(\d+)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--perf-data", required=True)
    ap.add_argument("--wall-s", type=float, required=True)
    ap.add_argument("--group", action="append", default=[], help="NAME=PID[,PID...]")
    ap.add_argument("--per-host", help="a group whose root PIDs are one host each")
    a = ap.parse_args()

    owner = {}  # tid -> (group, root pid)
    for g in a.group:
        name, _, pids = g.partition("=")
        for p in pids.split(","):
            if p.strip().isdigit():
                owner[int(p)] = (name, int(p))

    ready = {}    # tid -> time it became runnable
    running = {}  # cpu-less: tid -> time it was switched in
    wait = {}     # tid -> seconds on a run queue
    run = {}      # tid -> seconds on a CPU
    comm = {}     # tid -> its command name when last switched out
    lost = 0
    proc = subprocess.Popen(
        ["perf", "script", "-i", a.perf_data, "-F", "time,event,trace"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1 << 20)
    for line in proc.stdout:
        head, _, rest = line.partition(": ")
        try:
            t = float(head)
        except ValueError:
            lost += 1
            continue
        ev, _, trace = rest.partition(": ")
        ev = ev.strip()
        if ev == "sched:sched_switch":
            m = SWITCH.search(trace)
            if not m:
                continue
            prev, state, nxt = int(m.group(1)), m.group(2), int(m.group(3))
            comm[prev] = m.group(0)[len("prev_comm="):m.group(0).index(" prev_pid=")]
            if prev and prev in running:
                run[prev] = run.get(prev, 0.0) + t - running.pop(prev)
            if prev and state.startswith("R"):
                ready[prev] = t  # preempted: still runnable
            if nxt:
                r0 = ready.pop(nxt, None)
                if r0 is not None:
                    wait[nxt] = wait.get(nxt, 0.0) + t - r0
                running[nxt] = t
        elif ev in ("sched:sched_wakeup", "sched:sched_wakeup_new"):
            m = WAKE.search(trace)
            if m:
                tid = int(m.group(1))
                if tid not in running:
                    ready.setdefault(tid, t)
        elif ev == "sched:sched_process_fork":
            m = FORK.search(trace)
            if m:
                parent, child = int(m.group(1)), int(m.group(2))
                if parent in owner:
                    owner[child] = owner[parent]
                # a reused tid belongs to its new parent's group, or to none
                elif child in owner:
                    del owner[child]
    proc.wait()

    groups, hosts = {}, {}
    for tid in set(wait) | set(run):
        name, root = owner.get(tid, ("other", 0))
        g = groups.setdefault(name, {"wait_s": 0.0, "run_s": 0.0, "tasks": 0})
        g["wait_s"] += wait.get(tid, 0.0)
        g["run_s"] += run.get(tid, 0.0)
        g["tasks"] += 1
        if a.per_host and name == a.per_host:
            # the hosts' sshd apart from what they ran (the remote shell and its children)
            part = f"{name}:{'sshd' if comm.get(tid) == 'sshd' else 'shell'}"
            g = groups.setdefault(part, {"wait_s": 0.0, "run_s": 0.0, "tasks": 0})
            g["wait_s"] += wait.get(tid, 0.0)
            g["run_s"] += run.get(tid, 0.0)
            g["tasks"] += 1
            h = hosts.setdefault(root, [0.0, 0.0])
            h[0] += wait.get(tid, 0.0)
            h[1] += run.get(tid, 0.0)
    for g in groups.values():
        g["mean_waiting"] = round(g["wait_s"] / a.wall_s, 2) if a.wall_s > 0 else None
        g["wait_s"] = round(g["wait_s"], 3)
        g["run_s"] = round(g["run_s"], 3)
    out = {"wall_s": a.wall_s, "groups": groups}
    if a.per_host:
        # hosts whose trees did nothing in the recording (beyond the run's N) are left out
        busy = [h for h in hosts.values() if h[1] > 0.002]
        if busy:
            w = sorted(h[0] for h in busy)
            r = sorted(h[1] for h in busy)
            out["per_host"] = {
                "hosts": len(busy),
                "wait_ms_p50": round(1000 * statistics.median(w), 1),
                "wait_ms_p90": round(1000 * w[int(0.9 * (len(w) - 1))], 1),
                "run_ms_p50": round(1000 * statistics.median(r), 1),
                "run_ms_p90": round(1000 * r[int(0.9 * (len(r) - 1))], 1),
            }
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
