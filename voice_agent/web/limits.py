"""Bounded work per request and per client: body limits before parsing, rate limits by client.

Both run as plain ASGI middleware, so a request that is too large or too frequent is refused
before FastAPI parses a byte of it (form and JSON parsing hold the whole body in memory).

Rate limits are token buckets kept in this process (written here rather than taken from
``limits``/``slowapi``: those read the wall clock themselves and start a timer thread, while a
bucket is twenty lines whose clock a test can hand in). Several processes each keep their own
buckets, so the effective limit is per process: a flood is still cut to a bounded rate.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_BODY_LIMIT = 64 * 1024
"""Twilio's webhook forms are a few kilobytes (a WhatsApp body is at most 1,600 characters)."""

BODY_LIMITS = {"/api/chat": 256 * 1024, "/api/chat/stream": 256 * 1024}
"""A chat turn is at most 20,000 characters, each up to 6 bytes once JSON-escaped."""


@dataclass(frozen=True)
class Rate:
    """``burst`` requests at once, then ``per_second`` on average."""

    burst: float
    per_second: float


class TokenBuckets:
    """One bucket per key; the least recently used keys are forgotten beyond ``max_keys``."""

    def __init__(
        self, rate: Rate, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float | None:
        """Spend one token: ``None`` when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self.rate.burst, now))
        tokens = min(self.rate.burst, tokens + (now - last) * self.rate.per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._evict()
            return None
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate.per_second

    def _evict(self) -> None:
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


RATES = {
    # (path prefix, rate per client address): a browser chat turns every few seconds at most;
    # Twilio's callbacks come from a handful of addresses for every call, so theirs is wide.
    "/api/chat": Rate(burst=20, per_second=0.5),
    "/api/": Rate(burst=60, per_second=5),
    "/twilio/": Rate(burst=300, per_second=50),
    "/chat": Rate(burst=30, per_second=1),
}

CALLER_RATE = Rate(burst=20, per_second=1 / 3)
"""One sender on the messaging webhook: 20 at once, then one message every 3 s."""

CALL_RATE = Rate(burst=40, per_second=1)
"""One CallSid on the voice callbacks (a gather turn every few seconds is normal)."""


def too_many(retry_after: float) -> JSONResponse:
    """429 with the whole seconds to wait, in the body and in ``Retry-After``."""
    seconds = max(1, math.ceil(retry_after))
    return JSONResponse(
        {"detail": f"too many requests; retry in {seconds} s"},
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class RateLimitMiddleware:
    """Per client address and route group, before anything is read (429 + Retry-After)."""

    def __init__(
        self, app: ASGIApp, *, clock: Callable[[], float] = time.monotonic, scale: float = 1.0
    ) -> None:
        self.app = app
        self.groups = [
            (prefix, TokenBuckets(Rate(rate.burst * scale, rate.per_second * scale), clock=clock))
            for prefix, rate in RATES.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        buckets = next((b for prefix, b in self.groups if path.startswith(prefix)), None)
        if buckets is not None:
            client = scope.get("client") or ("?", 0)
            retry_after = buckets.take(f"{client[0]}")
            if retry_after is not None:
                await too_many(retry_after)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over the route's limit (413) before the app parses them.

    A declared ``Content-Length`` over the limit is refused without reading; otherwise the body
    is read, counting bytes as they stream in (chunked uploads declare nothing), and handed to
    the app only once it is known to fit.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = BODY_LIMITS.get(scope.get("path", ""), DEFAULT_BODY_LIMIT)
        declared = _content_length(scope)
        too_large = _error(413, f"request body too large (limit {limit} bytes)")
        if declared == -1:
            await _error(400, "invalid Content-Length")(scope, receive, send)
            return
        if declared is not None and declared > limit:
            await too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect as usual

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; ``None`` when absent, ``-1`` when malformed."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 12:
                return -1
            return int(text)
    return None
