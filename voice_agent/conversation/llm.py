"""The OpenAI text loop: Chat Completions with the same tool registry as every other channel.

Each turn sends the system prompt (``prompts/<language>/receptionist_text.md``), the persisted
history and the patient's message; tool calls go through ``ToolRegistry.dispatch`` with the
channel's verified context, for at most ``MAX_ROUNDS`` rounds. Any error raises, and the engine
lets the offline receptionist answer the turn instead.

One lock lives in code, not in the prompt: a booking, move or cancellation is passed on with
``confirmed_by_patient`` only when the patient's latest message is an explicit yes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from voice_agent.conversation.offline.dialogue import Turn, observe_tool
from voice_agent.conversation.offline.nlu import affirms
from voice_agent.conversation.offline.replies import _Fields
from voice_agent.conversation.state import ConversationState
from voice_agent.i18n import language_or_default, say_date
from voice_agent.settings import Settings
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

MAX_ROUNDS = 6
CONFIRMED_ACTIONS = {
    "book_appointment": "booked",
    "reschedule_appointment": "rescheduled",
    "cancel_appointment": "cancelled",
    "confirm_appointment": "confirmed",
}


class LLMGaveUp(RuntimeError):
    """The model kept calling tools past ``MAX_ROUNDS``."""


class LLMConversation:
    def __init__(self, settings: Settings, registry: ToolRegistry) -> None:
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        self.client = AsyncOpenAI(
            api_key=api_key, base_url=settings.openai_base_url, max_retries=1, timeout=20.0
        )
        self.model = settings.text_model
        self.registry = registry
        self.tools = registry.chat_schemas()
        self.prompts_dir = settings.prompts_dir

    async def respond(
        self, state: ConversationState, text: str, ctx: ToolContext, turn: Turn
    ) -> None:
        """Run one turn; fills ``turn`` and appends to ``state.history`` only on success."""
        system = await self._system_prompt(ctx)
        user = {"role": "user", "content": text[:4000]}
        added: list[dict[str, Any]] = [user]
        yes = affirms(text, ctx.language)
        for _ in range(MAX_ROUNDS):
            completion = await self.client.chat.completions.create(
                model=self.model,
                messages=[system, *state.history, *added],  # type: ignore[list-item]
                tools=self.tools,  # type: ignore[arg-type]
                tool_choice="auto",
                temperature=0.3,
            )
            message = completion.choices[0].message
            calls = message.tool_calls or []
            if not calls:
                reply = (message.content or "").strip()
                if not reply:
                    raise LLMGaveUp("empty answer")
                added.append({"role": "assistant", "content": reply})
                state.history.extend(added)
                state.trim_history()
                turn.parts.append(reply)
                return
            added.append(
                {
                    "role": "assistant",
                    "content": message.content,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.function.name,
                                "arguments": call.function.arguments,
                            },
                        }
                        for call in calls
                        if call.type == "function"
                    ],
                }
            )
            for call in calls:
                if call.type != "function":
                    continue
                name = call.function.name
                arguments = _guard(name, call.function.arguments, yes)
                turn.tool_calls.append(name)
                result = await self.registry.dispatch(name, arguments, ctx)
                observe_tool(state, name, result)
                if result.ok and name in CONFIRMED_ACTIONS:
                    key = CONFIRMED_ACTIONS[name]
                    turn.changed = {"action": key, **result.output[key]}
                added.append({"role": "tool", "tool_call_id": call.id, "content": result.to_json()})
        raise LLMGaveUp(f"more than {MAX_ROUNDS} tool rounds")

    async def _system_prompt(self, ctx: ToolContext) -> dict[str, str]:
        clinic = ctx.services.clinic()
        now: datetime = ctx.services.clock.now().astimezone(clinic.tz)
        name = "—"
        if ctx.caller_phone and await ctx.verified_by() != "unverified":
            patient = await ctx.patient()
            name = patient.full_name or "—"
        template = _prompt(self.prompts_dir, language_or_default(ctx.language))
        content = template.format_map(
            _Fields(
                clinic_name=clinic.name,
                today=f"{say_date(now.date(), ctx.language)} ({now.date().isoformat()})",
                caller=ctx.caller_phone or "—",
                patient_name=name,
                emergency_number=clinic.emergency_number,
                clinic_phone=clinic.phone,
            )
        )
        return {"role": "system", "content": content}


def _guard(name: str, arguments: str, patient_said_yes: bool) -> str:
    """Drop a confirmation the patient did not give in this very message."""
    if name not in CONFIRMED_ACTIONS or patient_said_yes:
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and parsed.get("confirmed_by_patient"):
        logger.info("%s: confirmation without a yes from the patient was withheld", name)
        parsed["confirmed_by_patient"] = False
        return json.dumps(parsed)
    return arguments


@cache
def _prompt(prompts_dir: Path, language: str) -> str:
    return (prompts_dir / language / "receptionist_text.md").read_text(encoding="utf-8")
