"""A local stand-in for the Hugging Face hub's file endpoint (stdlib only), for pull tests.

Serves ``ROOT/<owner>/<repo>/<file>`` at ``/<owner>/<repo>/resolve/<rev>/<file>`` (HEAD and GET) with the
headers huggingface-hub reads: ``X-Repo-Commit``, ``ETag`` / ``X-Linked-Etag`` (the quoted sha256, as the
hub does for LFS files), ``X-Linked-Size``, ``Content-Length``, ``Accept-Ranges``; ``Range`` gets a 206.
Anything else is a 404. Binds 127.0.0.1 only.

Test knobs (attributes of ``HubServer``): ``fail_after`` cuts the connection once that many body bytes
have been served in this run and then cuts every later GET at once (a dropped network); ``throttle``
limits GET bodies to that many bytes per second; ``bytes_served`` and ``requests`` count per run
(``reset()`` starts a new run). Each ``Request`` keeps the ``Authorization`` header it came with.

Hostile knobs, for the reliability suite: ``endless`` answers every GET with a 200 of no announced length
that sends the file and then zeros until the client hangs up (or ``ENDLESS_CAP`` bytes, a safety valve so
a client without a cap cannot fill the test machine's disk); ``ignore_range`` answers a Range request
with the whole file (a 200, not a 206); ``cut_each`` cuts every GET body after that many bytes;
``short_by`` serves the file as if that many bytes were missing from its end while HEAD still announces
the whole size; ``wrong_total`` makes a 206's ``Content-Range`` name another total size (the file changed).

As a script: ``python tests/helpers/hf_server.py --root DIR [--port 0]`` prints its URL and serves until killed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a fixed fake commit: 40 hex digits, like the hub's
_CHUNK = 64 * 1024
_PATH_RE = re.compile(r"^/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
ENDLESS_CAP = 64 << 20  # what an ``endless`` GET sends at most before it gives up


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None = None


class HubServer:
    def __init__(self, root: str | os.PathLike[str], port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.fail_after: int | None = None
        self.throttle: int | None = None
        self.endless = False
        self.ignore_range = False
        self.cut_each: int | None = None
        self.short_by = 0
        self.wrong_total = False
        self.bytes_served = 0
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._sha: dict[tuple[Path, int, int], str] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hf-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Start a new run: zero the counters, clear the knobs."""
        with self._lock:
            self.bytes_served = 0
            self.requests = []
            self.fail_after = None
            self.throttle = None
            self.endless = self.ignore_range = self.wrong_total = False
            self.cut_each = None
            self.short_by = 0

    def wait_idle(self, timeout: float = 30) -> bool:
        """Wait until no GET body is being sent (e.g. to a client that was just killed)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def gets(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    # -- internals --------------------------------------------------------------------------------

    def resolve(self, url_path: str) -> Path | None:
        match = _PATH_RE.match(urlsplit(url_path).path)
        if not match:
            return None
        owner, repo, _rev, name = (unquote(g) for g in match.groups())
        target = (self.root / owner / repo / name).resolve()
        if self.root not in target.parents or not target.is_file():
            return None
        return target

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = (path, st.st_size, st.st_mtime_ns)
        if key not in self._sha:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            self._sha[key] = digest.hexdigest()
        return self._sha[key]

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def allowance(self, wanted: int) -> int:
        """How many of ``wanted`` body bytes may still be sent before the simulated drop."""
        with self._lock:
            if self.fail_after is None:
                return wanted
            return max(0, min(wanted, self.fail_after - self.bytes_served))

    def count(self, n: int) -> None:
        with self._lock:
            self.bytes_served += n

    def sending(self, delta: int) -> None:
        with self._idle:
            self._active += delta
            self._idle.notify_all()


def _handler_for(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _cut(self) -> None:
            """Drop the connection without a clean end (what a network failure looks like)."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _serve(self, body: bool) -> None:
            rng = self.headers.get("Range")
            server.record(Request(self.command, self.path, rng, self.headers.get("Authorization")))
            path = server.resolve(self.path)
            if path is None:
                self._not_found()
                return
            size = path.stat().st_size
            if body and server.endless:
                self._endless(path)
                return
            served = size - server.short_by if body else size  # what a GET can really deliver
            start, end = 0, served - 1
            status = 200
            if rng and body and server.ignore_range:
                rng = None
            if rng:
                match = _RANGE_RE.match(rng.strip())
                if not match or int(match.group(1)) >= served:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{served}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(match.group(1))
                end = min(int(match.group(2)), served - 1) if match.group(2) else served - 1
                status = 206
            if body and server.allowance(1) == 0:
                self._cut()
                return
            etag = f'"{server.sha256(path)}"'
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(size))
            self.send_header("X-Repo-Commit", COMMIT)
            if status == 206:
                whole = size + 1 if server.wrong_total else size
                self.send_header("Content-Range", f"bytes {start}-{end}/{whole}")
            self.end_headers()
            if not body:
                return
            server.sending(+1)
            try:
                self._send_body(path, start, length)
            finally:
                server.sending(-1)

        def _endless(self, path: Path) -> None:
            """A 200 with no length (the body ends when the connection does): the file, then zeros."""
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()
            server.sending(+1)
            try:
                data = path.read_bytes()
                sent = 0
                while sent < ENDLESS_CAP:
                    try:
                        self.wfile.write(data)
                    except OSError:  # the client hung up: what a capped client does
                        return
                    server.count(len(data))
                    sent += len(data)
                    data = bytes(_CHUNK)
            finally:
                server.sending(-1)

        def _send_body(self, path: Path, start: int, length: int) -> None:
            with open(path, "rb") as fh:
                fh.seek(start)
                left = length
                sent = 0
                while left > 0:
                    if server.cut_each is not None and sent >= server.cut_each:
                        self._cut()
                        return
                    want = min(_CHUNK, left)
                    if server.cut_each is not None:
                        want = min(want, server.cut_each - sent)
                    n = server.allowance(want)
                    if n == 0:
                        self._cut()
                        return
                    data = fh.read(n)
                    try:
                        self.wfile.write(data)
                    except OSError:  # the client went away
                        self.close_connection = True
                        return
                    server.count(len(data))
                    sent += len(data)
                    left -= len(data)
                    if server.throttle:
                        time.sleep(len(data) / server.throttle)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True, help="folder laid out as <owner>/<repo>/<file>")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = HubServer(args.root, args.port)
    print(server.url, flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
