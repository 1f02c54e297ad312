"""Logging: the call or conversation id on every line, and no patient data in any record.

Patient data must never reach a log, whoever logs (our modules, SQLAlchemy, the Twilio SDK,
uvicorn) and whatever handler receives the record (ours, uvicorn's, a test's). So the last guard
sits where every record is born: a log-record factory that

- stamps ``record.call_id`` from a context variable (a call SID or a conversation id, set by the
  web routes and inherited by every task a call starts), so a formatter can print it;
- renders the message once, masks phone numbers and e-mail addresses in it, and does the same
  to the traceback text of ``logger.exception`` (a database error's text can quote a row);
- drops the query string from uvicorn's access lines.

Names cannot be recognised by a pattern; they are kept out by the code (no module logs one) and
checked by a test that greps the log of full flows and a database outage for every name used.
Third-party loggers that print request bodies (the Twilio SDK logs each REST request, phone
numbers included, at INFO) are raised to WARNING.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

current_call: ContextVar[str | None] = ContextVar("current_call", default=None)
"""The call SID or conversation id the current task works for (``-`` in logs when none)."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s"

QUIET_LOGGERS = {
    "twilio.http_client": logging.WARNING,  # logs every REST request's body: To, Body …
    "twilio": logging.WARNING,
    "httpx": logging.WARNING,  # request lines with query strings
    "httpcore": logging.WARNING,
    "googleapiclient.discovery": logging.WARNING,  # request URLs with query strings
    "openai": logging.WARNING,
    # Two lines per job run ("Running job", "executed successfully"): a dozen a minute from
    # the 5-second jobs, saying nothing; a failing or missed run still logs (error, warning).
    "apscheduler.executors": logging.WARNING,
}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# +E.164 with optional separators ("+55 11 98765-4321", "whatsapp:+5511987654321", URL-encoded
# "%2B5511987654321"), national
# numbers with an area code in parentheses ("(11) 98765-4321"), and bare runs of 10-15 digits.
_PHONE = re.compile(
    r"(?:\+|%2[Bb])\d[\d ().-]{6,18}\d"
    r"|\(\d{2,3}\)\s?\d{4,5}[\s-]?\d{4}"
    r"|(?<![\w.])\d{10,15}(?![\w])"
)


def mask_text(text: str) -> str:
    """Phone numbers and e-mail addresses replaced by placeholders (keeps the last 2 digits)."""
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return f"[phone …{digits[-2:]}]"


def _strip_query(path: Any) -> Any:
    return path.split("?", 1)[0] if isinstance(path, str) else path


_installed_factory: Callable[..., logging.LogRecord] | None = None


def install_log_privacy() -> None:
    """Install the record factory and quiet the chatty third-party loggers (idempotent)."""
    global _installed_factory
    for name, level in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)
    current = logging.getLogRecordFactory()
    if current is _installed_factory:
        return
    previous = current

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _guard(record)
        return record

    _installed_factory = factory
    logging.setLogRecordFactory(factory)


def _guard(record: logging.LogRecord) -> None:
    call_id = current_call.get()
    # A web chat's session id is the client's choice: masked like any text.
    record.call_id = mask_text(call_id) if call_id else "-"
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and record.args:
        # (client, method, path with query, http version, status)
        args = list(record.args)
        if len(args) >= 3:
            args[2] = _strip_query(args[2])
        record.args = tuple(args)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep the template only, never the arguments
        message = str(record.msg)
    record.msg, record.args = mask_text(message), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        # The traceback text is kept; the live exception object (with its values) is not.
        record.exc_info = None
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)


@contextlib.contextmanager
def call_scope(call_id: str | None) -> Iterator[None]:
    """Lines logged inside (and by tasks started inside) carry ``call_id``."""
    token = current_call.set(call_id)
    try:
        yield
    finally:
        current_call.reset(token)


def configure_logging(level: int = logging.INFO) -> None:
    """The process's root handler: one line per record with the call id, patient data masked."""
    install_log_privacy()
    logging.basicConfig(level=level, format=LOG_FORMAT)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging, in our format (its access line keeps the path, not the query)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {**LOGGING_CONFIG, "formatters": dict(LOGGING_CONFIG["formatters"])}
    config["formatters"]["default"] = {
        "()": "logging.Formatter",
        "fmt": LOG_FORMAT,
    }
    config["formatters"]["access"] = {
        "()": "logging.Formatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s",
    }
    return config
