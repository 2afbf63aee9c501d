#!/usr/bin/env python3
"""Write a .gor file of RECORDS records for the report benchmark.

    make_report_gor.py RECORDS OUT.gor [--no-replayed]

Each request (type 1) is followed by its original response (type 2) and,
unless --no-replayed, its replayed response (type 3), as a replay with
--output-http-track-response --output-file writes them. 40 endpoints with
numeric and hex ids; 5% of replays answer 500, 1% are missing. Bodies are
1-4 KiB. With --no-replayed every request waits for a response that never
comes, which is the worst case for the join's memory.
"""
import os
import random
import sys

records = int(sys.argv[1])
path = sys.argv[2]
replayed = "--no-replayed" not in sys.argv
random.seed(18)
separator = "\n\U0001F435\U0001F648\U0001F649\n".encode()
start = 1_700_000_000_000_000_000
bodies = [b"x" * size for size in (1024, 2048, 3072, 4096)]
sections = ["news", "guidance", "publications", "api/content", "search", "world", "statistics", "consultations"]
written = 0
i = 0
with open(path, "wb") as out:
    while written < records:
        ident = os.urandom(12).hex()
        t = start + i * 1_000_000
        section = sections[i % len(sections)]
        kind = i % 5
        if kind == 0:
            target = f"/{section}/{i}"
        elif kind == 1:
            target = f"/{section}/{os.urandom(20).hex()}"
        else:
            target = f"/{section}/page-{kind}?q={i}"
        request = (
            f"GET {target} HTTP/1.1\r\nHost: www.gov.uk\r\nUser-Agent: Mozilla/5.0 (bench)\r\n"
            "Accept: text/html\r\nAccept-Encoding: gzip\r\n\r\n"
        ).encode()
        out.write(f"1 {ident} {t} 0\n".encode() + request + separator)
        written += 1
        body = bodies[i % 4]
        original = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        if written < records:
            out.write(f"2 {ident} {t + 1} {random.randint(2, 80) * 1_000_000}\n".encode() + original + separator)
            written += 1
        roll = random.random()
        if replayed and written < records and roll >= 0.01:
            status = 500 if roll < 0.06 else 200
            answer = f"HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            out.write(f"3 {ident} {t + 2} {random.randint(2, 120) * 1_000_000}\n".encode() + answer + separator)
            written += 1
        i += 1
