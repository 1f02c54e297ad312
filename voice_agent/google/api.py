"""Google Calendar and Sheets clients (google-api-python-client), one per thread, with backoff.

Credentials: the service account in ``GOOGLE_APPLICATION_CREDENTIALS``. When an endpoint is
overridden (``VOICE_AGENT_GOOGLE_CALENDAR_ENDPOINT`` / ``…_SHEETS_ENDPOINT``) and no credentials
are configured, requests go out anonymous (local fakes in tests). Discovery documents are bundled
with the library, so building a client makes no network call.

The SDK is synchronous and httplib2 is not thread-safe: every thread gets its own clients, and
async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from voice_agent.errors import GoogleUnavailable
from voice_agent.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

SCOPES = (
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/spreadsheets",
)
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


def error_reason(error: HttpError) -> str:
    """The first ``errors[].reason`` of a Google error body ('' when absent)."""
    try:
        body = json.loads(error.content or b"{}")
        return str(body["error"]["errors"][0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def is_transient(error: BaseException) -> bool:
    """Worth retrying: throttling (429, 403 rateLimitExceeded), server errors, network."""
    if isinstance(error, HttpError):
        status = int(error.resp.status)
        if status == 429 or status >= 500:
            return True
        return status == 403 and error_reason(error) in RATE_LIMIT_REASONS
    return isinstance(error, OSError | socket.timeout | httplib2.HttpLib2Error)


class GoogleApis:
    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        base_delay: float = 0.5,
        workers: int = 4,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._retries = retries
        self._base_delay = base_delay
        self._local = threading.local()
        self._credentials: Any = None
        self._lock = threading.Lock()
        # A few dedicated threads: each builds its clients once (~0.3 s), instead of every
        # thread of the default executor doing so.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="google")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking SDK code on the Google threads, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _creds(self) -> Any:
        with self._lock:
            if self._credentials is None:
                self._credentials = self._load_credentials()
            return self._credentials

    def _load_credentials(self) -> Any:
        path = self._settings.google_application_credentials
        if path is not None:
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_file(
                str(path), scopes=list(SCOPES)
            )
        if self._settings.google_calendar_endpoint or self._settings.google_sheets_endpoint:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth

        credentials, _project = google.auth.default(scopes=list(SCOPES))
        return credentials

    def _client(self, name: str, version: str, endpoint: str | None) -> Any:
        clients: dict[str, Any] = self._local.__dict__.setdefault("clients", {})
        if name not in clients:
            from google_auth_httplib2 import AuthorizedHttp

            http = AuthorizedHttp(self._creds(), http=httplib2.Http(timeout=self._timeout))
            options = {"api_endpoint": endpoint} if endpoint else None
            clients[name] = build(
                name, version, http=http, client_options=options, cache_discovery=False
            )
        return clients[name]

    def _resource(self, name: str, make: Callable[[], Any]) -> Any:
        # Resource objects are cached too: the SDK builds each one's methods (and their
        # docstrings) on every access, ~50 ms apiece.
        resources: dict[str, Any] = self._local.__dict__.setdefault("resources", {})
        if name not in resources:
            resources[name] = make()
        return resources[name]

    def calendar_events(self) -> Any:
        return self._resource("events", lambda: self._calendar().events())

    def calendar_freebusy(self) -> Any:
        return self._resource("freebusy", lambda: self._calendar().freebusy())

    def sheets_values(self) -> Any:
        return self._resource(
            "values",
            lambda: (
                self._client("sheets", "v4", self._settings.google_sheets_endpoint)
                .spreadsheets()
                .values()
            ),
        )

    def calendar_list(self) -> Any:
        """The calendars shared with the service account (``voice-agent doctor`` checks them)."""
        return self._resource("calendarList", lambda: self._calendar().calendarList())

    def _calendar(self) -> Any:
        return self._client("calendar", "v3", self._settings.google_calendar_endpoint)

    def execute(self, make_request: Callable[[], Any], *, what: str, retry: bool = True) -> Any:
        """Run a request, retrying throttling and transient failures with exponential backoff.

        Non-transient errors (400, 404, 409, 410 …) are raised as ``HttpError`` for the caller to
        interpret; transient ones end as ``GoogleUnavailable`` after the retries. A request that
        is not idempotent (a Sheets append) passes ``retry=False``: the outbox retries it after
        checking what landed.
        """
        retries = self._retries if retry else 0
        for attempt in range(retries + 1):
            try:
                return make_request().execute()
            except Exception as error:
                if not is_transient(error):
                    raise
                if isinstance(error, OSError | httplib2.HttpLib2Error):
                    self._local.__dict__.clear()  # a broken connection: rebuild
                if attempt == retries:
                    raise GoogleUnavailable(f"{what}: {_short(error)}") from error
                delay = self._base_delay * 2**attempt * random.uniform(0.8, 1.2)
                logger.warning(
                    "google %s failed (%s); retrying in %.1fs", what, _short(error), delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")


def _short(error: BaseException) -> str:
    if isinstance(error, HttpError):
        return f"HTTP {error.resp.status} {error_reason(error)}".strip()
    return type(error).__name__
