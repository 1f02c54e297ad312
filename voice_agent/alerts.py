"""Alerts to the doctor or staff when something fails. The console alerter is the embedded
default; WhatsApp delivery plugs in behind the same protocol. Messages carry no patient data."""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger("voice_agent.alerts")


class Alerter(Protocol):
    async def alert(self, kind: str, message: str, *, private: bool = False) -> None:
        """Tell the clinic that something failed; ``message`` must not contain patient data,
        unless ``private`` (an emergency's callback number): then it goes to staff only, never
        to the log, and no hourly cap holds it back."""
        ...


class ConsoleAlerter:
    """Writes alerts to the log (and keeps them, for tests and the CLI)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def alert(self, kind: str, message: str, *, private: bool = False) -> None:
        self.sent.append((kind, message))
        logger.warning("ALERT %s: %s", kind, "(patient data, not logged)" if private else message)
