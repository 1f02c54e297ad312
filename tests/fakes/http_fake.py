"""What the local fake HTTP services (clinic API, Google, Twilio REST) have in common.

Each fake is a real HTTP server on 127.0.0.1 that the production client reaches over a socket,
and each needs the same scaffolding: a threaded server on a free port with its own serving
thread, ``with`` to start and stop it, one lock around its state, a handler that sends every
HTTP method to one place, a response written whole (the client may already have given up) and a
queue of injected faults. That scaffolding lives here once, so that a fake only says what its
service checks, keeps and answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self, TypeVar


@dataclass
class Fault:
    """One injected fault: wait ``delay`` seconds, then answer ``status`` (when 400 or more)
    instead of handling the request, or, with ``apply``, after handling it."""

    status: int = 500
    delay: float = 0.0
    apply: bool = False

    def meets(self, method: str, path: str) -> bool:
        """Whether this request is the one to meet the fault (any request, unless narrowed)."""
        return True

    @property
    def fails_before(self) -> bool:
        """The request fails without being applied."""
        return self.status >= 400 and not self.apply

    @property
    def fails_after(self) -> bool:
        """The request is applied, then the client sees an error."""
        return self.status >= 400


F = TypeVar("F", bound=Fault)


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body

    def log_message(self, *args: object) -> None:
        return


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request's body, as long as its Content-Length says (none: empty)."""
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def write_response(
    request: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str | None
) -> None:
    """Send the status, Content-Type (unless None), Content-Length and body."""
    request.send_response(status)
    if content_type is not None:
        request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    try:
        request.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        return  # the client gave up (its timeout): as on the real service


class LocalHttpFake:
    """A fake service on ``http://127.0.0.1:<free port>``, served while ``with fake:`` lasts.

    A subclass sets ``methods`` (the HTTP methods it answers; others get the server's 501) and
    implements ``_serve``; it guards its state with ``self.lock``.
    """

    methods: ClassVar[tuple[str, ...]] = ("GET", "POST")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.connections = 0
        """TCP connections accepted (a client that keeps its connections alive opens one)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # serve_forever looks for the stop request between selects of up to 0.5 s: a connection
        # wakes it at once (about 0.5 s of every test with a fake went into waiting here).
        stopper = threading.Thread(target=self._server.shutdown)
        stopper.start()
        while stopper.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection(self._server.server_address[:2], timeout=1).close()
            stopper.join(0.01)
        self._server.server_close()

    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root_url

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request (every method in ``methods`` comes here)."""
        raise NotImplementedError

    def _next_fault(self, faults: list[F], method: str, path: str) -> F | None:
        """Take the first queued fault this request meets and wait out its delay."""
        fault = None
        with self.lock:
            for index, candidate in enumerate(faults):
                if candidate.meets(method, path):
                    fault = faults.pop(index)
                    break
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        return fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        def route(method: str) -> Callable[[BaseHTTPRequestHandler], None]:
            def do(request: BaseHTTPRequestHandler) -> None:
                fake._serve(request, method)

            return do

        def setup(request: BaseHTTPRequestHandler) -> None:
            with fake.lock:
                fake.connections += 1
            _QuietHandler.setup(request)

        handlers: dict[str, object] = {f"do_{m}": route(m) for m in self.methods}
        handlers["setup"] = setup
        return type("Handler", (_QuietHandler,), handlers)
