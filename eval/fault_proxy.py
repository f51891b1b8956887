"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real OpenAI-compatible server: for the retry tests
and the scoring soak (`axr eval bench soak`).

Each distinct request (by its body) gets a seeded schedule: its first 0-2 tries meet a fault, the next one
is forwarded. Faults: the connection dropped before forwarding, dropped after the upstream answered (the
answer is lost), HTTP 500, 503, 429 with Retry-After, and a response that never comes: the proxy holds the
connection for `hang_s` seconds, then drops it. The client's per-try timeout is set far above any healthy
answer's time (and above `hang_s`), so no clock of the test races the machine's speed: a loaded machine
makes a test slower, never different. (A per-try timeout firing is tested on its own, with no proxy.)
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("drop_before", "drop_after", "500", "503", "429", "hang")


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 0, hang_s: float = 1.0, share: float | None = None):
        """`share`: the share of requests whose first try meets a fault (each then meets 1-2); None: the
        schedule of 0-2 faults per request (about 3 in 4 requests meet one)."""
        self.upstream, self.hang_s, self.share = upstream.rstrip("/"), hang_s, share
        self.rng, self.lock = random.Random(seed), threading.Lock()
        self.schedules: dict[str, list[str]] = {}
        self.tries: Counter[str] = Counter()  # tries per distinct request
        self.injected: Counter[str] = Counter()  # faults by kind
        self.forwarded = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self, body: bytes) -> str | None:
        key = hashlib.sha256(body).hexdigest()
        with self.lock:
            if key not in self.schedules:
                if self.share is None:
                    count = self.rng.choice((0, 1, 1, 2))
                else:
                    count = self.rng.choice((1, 2)) if self.rng.random() < self.share else 0
                self.schedules[key] = [self.rng.choice(FAULTS) for _ in range(count)]
            attempt = self.tries[key]
            self.tries[key] += 1
            fault = self.schedules[key][attempt] if attempt < len(self.schedules[key]) else None
            if fault:
                self.injected[fault] += 1
            else:
                self.forwarded += 1
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._relay(b"", "GET")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fault = proxy._next_fault(body)
                if fault == "drop_before":
                    return self._drop()
                if fault == "drop_after":
                    self._forward(body, "POST")
                    return self._drop()
                if fault == "hang":
                    return self._hold()
                if fault in ("500", "503", "429"):
                    extra = {"Retry-After": "1"} if fault == "429" else {}
                    return self._reply(int(fault), b'{"error": "injected"}', extra)
                self._relay(body, "POST")

            def _forward(self, body: bytes, method: str) -> httpx.Response:
                url, headers = proxy.upstream + self.path.removeprefix("/v1"), {"content-type": "application/json"}
                return httpx.request(method, url, content=body or None, headers=headers, timeout=300)

            def _relay(self, body: bytes, method: str) -> None:
                response = self._forward(body, method)
                self._reply(response.status_code, response.content, {})

            def _reply(self, status: int, content: bytes, extra: dict) -> None:
                self.send_response(status)
                for name, value in {"content-type": "application/json", **extra}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _hold(self) -> None:
                """Answer nothing for `hang_s` seconds (or until the client closes the connection), then drop."""
                self.connection.settimeout(proxy.hang_s)
                try:
                    while self.connection.recv(4096):
                        pass
                except OSError:
                    pass
                self._drop()

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return Handler
