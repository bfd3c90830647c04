#!/usr/bin/env python3
"""The demo's protected upstream: a tiny HTTP/1.1 echo server on 127.0.0.1.

    python3 scripts/demo/echo.py PORT

Every request gets 200 and a JSON body describing what arrived, like the Rust test
harness's upstream (tests/common/envoy.rs):

    {"method": "GET", "path": "/hello", "query": null,
     "headers": {"x-certgate-role": "web", ...}}

Header names are lower-cased; repeated headers are joined with ",". One line per
request goes to stderr. Standard library only.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Envoy reuses upstream connections
    server_version = "certgate-demo-echo"

    def _echo(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        url = urlsplit(self.path)
        body = json.dumps(
            {
                "method": self.command,
                "path": url.path,
                "query": url.query or None,
                "headers": headers,
            },
            indent=None,
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _echo

    def log_message(self, fmt, *args):
        sys.stderr.write("echo: %s\n" % (fmt % args))
        sys.stderr.flush()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: echo.py PORT")
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo)
    server.daemon_threads = True
    print(f"echo: listening on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
