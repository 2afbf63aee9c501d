#!/usr/bin/env python3
"""Small HTTP servers for the demo, standard library only.

  demo-http.py app ADDRESS PORT NAME      a "production" app on a cache host
  demo-http.py staging ADDRESS PORT FILE  a "staging" server that counts what it
                                          receives and writes the counts to FILE
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    mode, address, port, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    counts = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if mode == "staging":
                with lock:
                    counts[self.command] = counts.get(self.command, 0) + 1
                    counts["total"] = counts.get("total", 0) + 1
                    with open(extra + ".tmp", "w") as f:
                        json.dump(counts, f, sort_keys=True)
                    import os
                    os.replace(extra + ".tmp", extra)
                body = b"staging saw it\n"
            else:
                body = ("hello from %s\n" % extra).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer((address, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
