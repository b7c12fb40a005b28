"""The local run's preview server (`bin/run-local`): it serves the preview bucket in moto the way a static
host does, the shared site at `127.0.0.1:PORT` and a thread's preview (PREVIEW_MODE=thread) at
`{label}.localhost:PORT`, as deploy/thread-preview-function.js maps hosts in production."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from supervisor.contract.previews import THREADS_PREFIX, is_thread_label


def site_key(path: str) -> str:
    """A request path's key in a site, as a static host (and deploy/thread-preview-function.js) maps it:
    `/about/` and `/about` → `about/index.html`, `/a.css` → `a.css`."""
    key = unquote(urlsplit(path).path).lstrip("/")
    if key == "" or key.endswith("/"):
        return key + "index.html"
    return key if "." in key.rsplit("/", 1)[-1] else key + "/index.html"


def host_prefix(host: str) -> str | None:
    """`{label}.localhost[:port]` → `threads/{label}/` (a thread's preview); any other host → "" (the
    shared site); a first label that is no thread label → None (refused, as the CloudFront function does)."""
    name = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
    if not name.endswith(".localhost"):
        return ""
    label = name.removesuffix(".localhost")
    return f"{THREADS_PREFIX}{label}/" if is_thread_label(label) else None


class PreviewHandler(BaseHTTPRequestHandler):
    """Serves the preview bucket the way a static host does (site_key), a thread's by its host (host_prefix)."""

    s3: Any = None
    bucket = ""

    def do_GET(self) -> None:
        prefix = host_prefix(self.headers.get("Host", ""))
        if prefix is None:
            self.send_error(404, "no such thread preview")
            return
        key = prefix + site_key(self.path)
        try:
            found = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            self.send_error(404, f"{key} is not in s3://{self.bucket}")
            return
        body = found["Body"].read()
        self.send_response(200)
        self.send_header("Content-Type", found.get("ContentType", "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_preview_server(s3: Any, bucket: str) -> ThreadingHTTPServer:
    handler = type("Handler", (PreviewHandler,), {"s3": s3, "bucket": bucket})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="preview", daemon=True).start()
    return server


def fetch(url: str) -> tuple[int, bytes]:
    """GET a preview of our loopback server: `*.localhost` names need no resolver (Python's may not know
    them): the request goes to 127.0.0.1 with the URL's host in its Host header."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port or 80, timeout=5)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": parts.netloc})
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()
