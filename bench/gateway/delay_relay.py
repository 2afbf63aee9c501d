#!/usr/bin/env python3
"""A TCP relay that adds a fixed round-trip time, for bench/gateway/run.sh.

This machine's kernel has no netem (no sch_netem, no sch_fq for BPF EDT), so the delay is added
here, in user space: every byte is forwarded RTT/2 after it arrived, in each direction. The TCP
handshake's round trip is kept too: the relay connects upstream RTT/2 after accepting (when the
SYN would have arrived), and forwards the client's first bytes no earlier than one RTT after the
accept (when the client could first have sent them), so a new connection costs what it would on
a real link: one RTT before the client's first byte reaches the server.

  delay_relay.py --rtt-ms 30 LISTEN_ADDR:PORT=TARGET_ADDR:PORT ...
  delay_relay.py --rtt-ms 1 --listen-port 2223 --target-port 2222 --hosts-file hosts.txt

Prints "READY" once every listener is bound. Runs until SIGTERM.
"""
import argparse
import asyncio
import collections
import os
import signal
import socket
import sys

QUICKACK = False  # --quickack: ACK every segment at once (re-armed per read), never delayed


class Pipe:
    """Bytes for one direction, each released at its due time, in order; None is EOF."""

    def __init__(self, loop, on_eof):
        self.loop = loop
        self.queue = collections.deque()
        self.transport = None  # where released bytes go, once connected
        self.timer = None
        self.eof = False       # EOF queued (nothing after it)
        self.on_eof = on_eof

    def push(self, due, data):
        if self.eof:
            return
        if data is None:
            self.eof = True
        self.queue.append((due, data))
        self.schedule()

    def schedule(self):
        if self.timer is None and self.queue and self.transport is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self):
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + 0.0002:
            _, data = self.queue.popleft()
            if data is None:
                if self.transport.can_write_eof() and not self.transport.is_closing():
                    self.transport.write_eof()
                self.on_eof()
            elif not self.transport.is_closing():
                self.transport.write(data)
        self.schedule()


class Side(asyncio.Protocol):
    def __init__(self, on_data, on_eof):
        self.on_data, self.on_eof = on_data, on_eof

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if QUICKACK:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        self.on_data(data)

    def eof_received(self):
        self.on_eof()
        return True  # keep our sending half open until the bytes queued for it are out

    def connection_lost(self, exc):
        self.on_eof()  # a reset ends the direction like an EOF


class Relay:
    def __init__(self, loop, rtt, target):
        self.loop, self.half, self.rtt, self.target = loop, rtt / 2, rtt, target

    def accept(self):
        loop, half, rtt = self.loop, self.half, self.rtt
        t0 = loop.time()
        ends = {}
        delivered = [0]

        def one_direction_done():
            delivered[0] += 1
            if delivered[0] == 2 or "server" not in ends:
                for t in ends.values():
                    t.close()

        up = Pipe(loop, one_direction_done)    # client -> target
        down = Pipe(loop, one_direction_done)  # target -> client
        client_due = lambda: max(loop.time(), t0 + rtt) + half

        class Client(Side):
            def connection_made(inner, transport):
                inner.transport = transport
                ends["client"] = transport
                down.transport = transport
                down.schedule()
                loop.call_at(t0 + half, lambda: asyncio.ensure_future(connect()))

        client = Client(lambda d: up.push(client_due(), d), lambda: up.push(client_due(), None))

        async def connect():
            server = Side(lambda d: down.push(loop.time() + half, d), lambda: down.push(loop.time() + half, None))
            try:
                transport, _ = await loop.create_connection(lambda: server, *self.target)
            except OSError:
                if "client" in ends:
                    ends["client"].close()
                return
            ends["server"] = transport
            up.transport = transport
            up.schedule()
        return client


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--listen-port", type=int)
    ap.add_argument("--target-port", type=int)
    ap.add_argument("--hosts-file")
    ap.add_argument("--quickack", action="store_true",
                    help="ACK at once (TCP_QUICKACK re-armed per read) instead of Linux's delayed ACK")
    ap.add_argument("maps", nargs="*", help="LISTEN_ADDR:PORT=TARGET_ADDR:PORT")
    a = ap.parse_args()
    global QUICKACK
    QUICKACK = a.quickack
    loop = asyncio.get_running_loop()
    pairs = []
    for m in a.maps:
        listen, target = m.split("=")
        la, lp = listen.rsplit(":", 1)
        ta, tp = target.rsplit(":", 1)
        pairs.append(((la, int(lp)), (ta, int(tp))))
    if a.hosts_file:
        for line in open(a.hosts_file):
            h = line.strip()
            if h:
                pairs.append(((h, a.listen_port), (h, a.target_port)))
    servers = []
    for (la, lp), target in pairs:
        relay = Relay(loop, a.rtt_ms / 1000, target)
        servers.append(await loop.create_server(relay.accept, la, lp, backlog=4096, reuse_address=True))
    print("READY", flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    await stop


if __name__ == "__main__":
    # Drop descriptors inherited from whoever started us (a bench lock taken with flock(1), say):
    # a relay kept up between runs (KEEP_UP=1) must not hold them. Before the event loop opens its own.
    os.closerange(3, 65536)
    asyncio.run(main())
