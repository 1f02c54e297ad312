"""What one turn of the offline receptionist produced, and what it remembers from tool results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voice_agent.conversation.state import ConversationState
from voice_agent.tools.registry import ToolResult


@dataclass
class Turn:
    """What one turn produced; the engine turns it into the channel's reply."""

    parts: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    changed: dict[str, Any] | None = None
    end: bool = False
    handoff: bool = False

    @property
    def text(self) -> str:
        return "\n\n".join(p.strip() for p in self.parts if p.strip())


def observe_tool(state: ConversationState, name: str, result: ToolResult) -> None:
    """Remember what tools returned (offers, the appointment changed), whoever called them."""
    if not result.ok:
        return
    output = result.output
    if name == "find_slots":
        state.offers = list(output.get("options") or [])
        state.offered_service = output.get("service")
        state.chosen = None
        if state.offers:
            state.stage = "offering"
    for key in ("booked", "rescheduled", "cancelled", "confirmed"):
        if key in output and name != "find_slots":
            state.last_change = {"action": key, **output[key]}
            state.offers, state.chosen = [], None
