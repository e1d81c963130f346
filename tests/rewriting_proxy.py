"""A hostile server for tests: a proxy in front of the sandbox that rewrites its JSON answers.

    with RewritingProxy(sandbox.url, rewrite) as proxy:
        sync against proxy.url

`rewrite(path, document)` gets every decoded JSON answer and changes it in place; the proxy
sends the result on with the sandbox's status. It listens on a loopback port of its own.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Rewrite = Callable[[str, Any], None]


class RewritingProxy:
    def __init__(self, upstream: str, rewrite: Rewrite):
        self.upstream = urlsplit(upstream)
        self.rewrite = rewrite
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RewritingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=30
                )
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    kind = answer.getheader("Content-Type") or ""
                finally:
                    upstream.close()
                if "json" in kind and data:
                    document = json.loads(data)
                    proxy.rewrite(urlsplit(self.path).path, document)
                    data = json.dumps(document).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", kind or "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = do_DELETE = do_GET

        return Handler
