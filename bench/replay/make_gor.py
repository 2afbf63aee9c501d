#!/usr/bin/env python3
"""Write a .gor file of N GET requests (GoReplay 1.3+ four-field metas).

    make_gor.py COUNT OUT.gor [HOST]

Requests are spaced 1 ms apart (recorded time), ids are 24 hex digits.
"""
import os
import sys

count = int(sys.argv[1])
path = sys.argv[2]
host = sys.argv[3] if len(sys.argv) > 3 else "www.gov.uk"
separator = "\n\U0001F435\U0001F648\U0001F649\n".encode()
start = 1_700_000_000_000_000_000
with open(path, "wb") as out:
    for i in range(count):
        payload = (
            f"GET /government/news/item-{i}?page={i % 7} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "User-Agent: Mozilla/5.0 (bench)\r\n"
            "Accept: text/html\r\n"
            "Accept-Encoding: gzip\r\n"
            "\r\n"
        ).encode()
        meta = f"1 {os.urandom(12).hex()} {start + i * 1_000_000} {50_000}\n".encode()
        out.write(meta + payload + separator)
