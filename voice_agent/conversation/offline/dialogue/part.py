"""What the dialogue's collaborators share: the turn they work on.

``Stages``, ``Booking``, ``Appointments`` and ``ClinicAnswers`` each own one part of the
conversation; they read and write the same ``Run`` (state, tool context, the reply being built),
and reach each other through it (``self.run.booking.search()``), so a call between parts says
where the code lives.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from voice_agent.clinic.model import Clinic
from voice_agent.conversation.state import ConversationState
from voice_agent.store.tables import Patient
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolResult

if TYPE_CHECKING:
    from voice_agent.conversation.offline.dialogue.core import Run
    from voice_agent.conversation.offline.dialogue.turn import Turn


class Part:
    """A collaborator of one turn: shortcuts to the ``Run``'s state, context and helpers."""

    def __init__(self, run: Run) -> None:
        self.run = run

    @property
    def state(self) -> ConversationState:
        return self.run.state

    @property
    def ctx(self) -> ToolContext:
        return self.run.ctx

    @property
    def turn(self) -> Turn:
        return self.run.turn

    @property
    def clinic(self) -> Clinic:
        return self.run.clinic

    @property
    def today(self) -> date:
        return self.run.today

    @property
    def text(self) -> str:
        return self.run.text

    @property
    def lang(self) -> str:
        return self.run.lang

    def say(self, key: str, **fields: Any) -> None:
        self.run.say(key, **fields)

    def text_of(self, key: str, **fields: Any) -> str:
        return self.run.text_of(key, **fields)

    async def call(self, name: str, **arguments: Any) -> ToolResult:
        return await self.run.call(name, **arguments)

    def tool_problem(self, result: ToolResult) -> None:
        self.run.tool_problem(result)

    async def patient_or_none(self) -> Patient | None:
        return await self.run.patient_or_none()

    def copay(self, price: str) -> str:
        return self.run.copay(price)

    def service_list(self) -> str:
        return self.run.service_list()

    def service_name(self, service_id: str | None) -> str:
        return self.run.service_name(service_id)


def weekday_of(iso_day: str) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[date.fromisoformat(iso_day).weekday()]
