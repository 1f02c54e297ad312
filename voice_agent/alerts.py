"""Alerts to the doctor or staff when something fails. The console alerter is the embedded
default; WhatsApp delivery plugs in behind the same protocol. Messages carry no patient data."""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger(__name__)


class Alerter(Protocol):
    async def alert(self, kind: str, message: str) -> None:
        """Tell the clinic that something failed; ``message`` must not contain patient data."""
        ...


class ConsoleAlerter:
    """Writes alerts to the log (and keeps them, for tests and the CLI)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def alert(self, kind: str, message: str) -> None:
        self.sent.append((kind, message))
        logger.warning("ALERT %s: %s", kind, message)
