#!/usr/bin/env python3
"""A local HTTP target that answers every request after a fixed delay and
measures how late each request arrives against its recorded schedule.

    slow_target.py PORT DELAY_MS RATE COUNT RESULT_FILE

Requests are GET /item/<i>; request i was recorded at i/RATE seconds. A
request's lag is (arrival - i/RATE) minus the smallest such value over the
run, i.e. how far behind the best-kept schedule it arrived. The server
stops when COUNT requests arrived and every answer went out, or after
COUNT/RATE + 60 s, and writes one line of figures to RESULT_FILE.
"""
import asyncio
import sys
import time

port, delay_ms, rate, count, result_path = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
offsets = []  # arrival - schedule, seconds
seen = set()
duplicates = 0
connections = 0
open_now = 0
peak_open = 0
answered = 0
done = asyncio.Event()
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def serve(reader, writer):
    global connections, open_now, peak_open, answered, duplicates
    connections += 1
    open_now += 1
    peak_open = max(peak_open, open_now)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            now = time.monotonic()
            target = head.split(b" ", 2)[1]
            index = int(target.rsplit(b"/", 1)[1])
            if index in seen:
                duplicates += 1
            seen.add(index)
            offsets.append(now - index / rate)
            await asyncio.sleep(delay_ms / 1000)
            writer.write(RESPONSE)
            answered += 1
            if answered >= count:
                done.set()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        open_now -= 1
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    async with server:
        try:
            await asyncio.wait_for(done.wait(), timeout=count / rate + 60)
        except asyncio.TimeoutError:
            pass
    base = min(offsets) if offsets else 0
    lags = sorted(o - base for o in offsets)

    def pct(p):
        return lags[min(len(lags) - 1, int(p * len(lags)))] * 1000 if lags else float("nan")

    line = (f"received {len(seen)} of {count} (duplicates {duplicates}), connections {connections} "
            f"(peak open {peak_open}), lag p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {(lags[-1] * 1000 if lags else 0):.1f} ms")
    with open(result_path, "w") as out:
        out.write(line + "\n")


asyncio.run(main())
