"""A fault-injecting HTTP proxy in front of moto: what the supervisor, the workers and the `aws` CLI
see of "AWS" when `AWS_ENDPOINT_URL` points here.

Each request to a chosen service (SQS, S3) is, at the plan's rates, answered with an injected error
(500, or S3's 503 SlowDown), held back for a while before it is forwarded (a slow call), or dropped:
the connection closes before the request reaches moto. A dropped request is never carried out, so a
client's retry cannot duplicate it (a lost *reply* would make any SQS client send twice; that is
at-least-once delivery, not a fault of ours, and is not injected). Everything else is forwarded.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}
SQS_ERROR = b'{"__type": "com.amazonaws.sqs#InternalError", "message": "injected fault"}'
S3_ERRORS = {
    500: b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>",
    503: b"<Error><Code>SlowDown</Code><Message>injected fault</Message></Error>",
}


@dataclass
class FaultPlan:
    services: frozenset[str] = frozenset({"sqs", "s3"})
    error_rate: float = 0.0
    slow_rate: float = 0.0
    drop_rate: float = 0.0
    slow_seconds: float = 2.0
    seed: int = 1
    on: threading.Event = field(default_factory=threading.Event)  # faults only while set

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - which request fails, not a secret
        self._lock = threading.Lock()

    def choose(self, service: str) -> str:
        """ "error", "slow", "drop" or "pass" for one request."""
        if service not in self.services or not self.on.is_set():
            return "pass"
        with self._lock:
            roll = self._random.random()
        if roll < self.error_rate:
            return "error"
        if roll < self.error_rate + self.drop_rate:
            return "drop"
        if roll < self.error_rate + self.drop_rate + self.slow_rate:
            return "slow"
        return "pass"


def service_of(headers: http.client.HTTPMessage) -> str:
    """The service a signed request is for: SigV4's credential scope is key/date/region/service/…"""
    scope = headers.get("Authorization", "").split("/")
    return scope[3] if len(scope) > 4 else "s3"


class FaultProxy:
    def __init__(self, target: str, plan: FaultPlan):
        self.target = urlsplit(target)
        self.plan = plan
        self.counts: Counter[tuple[str, str]] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def injected(self) -> dict[str, int]:
        """Faults injected so far, by "service:fault"."""
        return {f"{service}:{fault}": n for (service, fault), n in sorted(self.counts.items()) if fault != "pass"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect

            def log_message(self, *args: object) -> None:  # one line per request otherwise
                pass

            def _any(self) -> None:
                body = self._read_body()
                service = service_of(self.headers)
                fault = proxy.plan.choose(service)
                proxy.counts[(service, fault)] += 1
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "error":
                    if service == "sqs":
                        status, data, kind = 500, SQS_ERROR, "application/x-amz-json-1.0"
                    else:
                        status = 503 if proxy.counts[(service, fault)] % 2 else 500
                        data, kind = S3_ERRORS[status], "application/xml"
                    self._reply(status, {"Content-Type": kind, "Content-Length": str(len(data))}, data)
                    return
                if fault == "slow":
                    time.sleep(proxy.plan.slow_seconds)
                self._forward(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    chunks = []
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                    kept = {k: v for k, v in reply.getheaders() if k.lower() not in HOP_BY_HOP}
                    self._reply(reply.status, kept, data)
                finally:
                    upstream.close()

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() != "content-length" or self.command == "HEAD":  # HEAD: the object's length
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        return Handler
