"""What a channel that shows a turn as it happens (the web chat) hears during the turn.

Channels that send one message (WhatsApp, SMS) pass no listener and get the final text only.
"""

from __future__ import annotations

from typing import Protocol


class TurnListener(Protocol):
    async def text(self, delta: str) -> None:
        """More of the reply, as the model writes it."""

    async def working(self, tool: str) -> None:
        """A tool runs now (the page shows "typing…")."""

    async def discard(self) -> None:
        """Forget the text streamed so far: the offline receptionist answers this turn instead."""
