#!/usr/bin/env python3
"""The Python echo middleware, doing what GoReplay's examples/middleware/echo.py
does per message (decode the hex, split meta from payload and headers from
body, encode again), but flushing each line as a real middleware must."""
import binascii
import sys

for raw_line in sys.stdin:
    decoded = bytes.fromhex(raw_line.rstrip())
    meta, payload = decoded.split(b"\n", 1)
    end = payload.index(b"\r\n\r\n") + 4
    sys.stdout.write(binascii.hexlify(meta + b"\n" + payload[:end] + payload[end:]).decode("ascii") + "\n")
    sys.stdout.flush()
