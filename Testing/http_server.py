"""A real HTTP server on 127.0.0.1 for the download tests, with routes that misbehave on purpose.

Usage::

    with LocalServer() as server:
        server.routes["/model.bin"] = Route(data=b"...", cut_first_at=1000)
        url = server.url("/model.bin")
        ...
        assert server.requests[1].range == "bytes=1000-"

A ``Route`` can serve with or without HTTP Range support, answer an error status, cut the connection part way
on the first request, announce a wrong size, wait before answering (to hit a client timeout), send slowly,
or redirect. Every request is recorded in ``server.requests``. ``card_for`` writes a model card for data
served this way (the shipped default card with another name, address, size and sha256).
"""

from __future__ import annotations

import copy
import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

from SpineMetSegLib.models.catalog import EMBEDDED_CATALOG, load_catalog

CHUNK_BYTES = 16 * 1024


@dataclass
class Route:
    """How the server answers one path."""

    data: bytes = b""
    status: int = 200  # any other value is answered as an error without a body
    ranges: bool = True  # honour "Range: bytes=N-" with 206; False answers 200 with the whole file
    cut_first_at: Optional[int] = None  # first request: send this many body bytes, then drop the connection
    announced_size: Optional[int] = None  # Content-Length to announce instead of the real one
    delay_s: float = 0.0  # wait before answering
    chunk_delay_s: float = 0.0  # wait between chunks of the body (a slow transfer)
    redirect_to: Optional[str] = None  # answer 302 with this Location
    hits: int = 0


@dataclass
class Request:
    """One request the server received."""

    path: str
    range: Optional[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests read server.requests instead
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def _answer(self):
        route = self.server.routes.get(self.path)
        self.server.requests.append(Request(self.path, self.headers.get("Range")))
        if route is None:
            self.send_error(404)
            return
        route.hits += 1
        if route.delay_s:
            time.sleep(route.delay_s)
        if route.redirect_to:
            self.send_response(302)
            self.send_header("Location", route.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route.status != 200:
            self.send_error(route.status)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and route.ranges:
            start = int(match.group(1))
            if start >= len(route.data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(route.data) - 1}/{len(route.data)}")
        else:
            self.send_response(200)
        body = route.data[start:]
        self.send_header("Content-Length", str(route.announced_size or len(body)))
        self.send_header("Accept-Ranges", "bytes" if route.ranges else "none")
        self.end_headers()
        if route.cut_first_at is not None and route.hits == 1:
            self.wfile.write(body[: route.cut_first_at])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        for offset in range(0, len(body), CHUNK_BYTES):
            self.wfile.write(body[offset : offset + CHUNK_BYTES])
            if route.chunk_delay_s:
                time.sleep(route.chunk_delay_s)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping must not hold up the test's end

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: Dict[str, Route] = {}
        self.requests: List[Request] = []


class LocalServer:
    """Starts the server in a thread; ``url(path)`` gives addresses on it."""

    def __init__(self):
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def routes(self) -> Dict[str, Route]:
        return self._server.routes

    @property
    def requests(self) -> List[Request]:
        return self._server.requests

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def card_for(data: bytes, url: str, *, name: str = "test-model", version: str = "1.0.0",
             file_format: str = "safetensors", **file_fields: Any) -> Dict[str, Any]:
    """A valid model card dict (the shipped default's fields) whose file is ``data`` at ``url``."""
    card = copy.deepcopy(load_catalog(EMBEDDED_CATALOG, include_imported=False).get().to_dict())
    card.update(name=name, version=version)
    card.pop("supersedes", None)  # the shipped default may name its predecessor; a test card has none
    card["file"] = {"url": url, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "format": file_format, **file_fields}
    return card
