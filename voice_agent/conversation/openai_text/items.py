"""Conversation items as the Responses API takes them, and the yes-lock on confirmations.

We keep our own copy of every conversation's items (in ``ConversationState.history``): the
offline receptionist's turns must reach the model when OpenAI is back, and with ``store`` off
(or an expired ``previous_response_id``) the items are all the model has. Persisted items are
the plain input shapes: ``{"role", "content"}`` messages, ``function_call`` and
``function_call_output``. Reasoning items stay within the turn that produced them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger(__name__)

CONFIRMED_ACTIONS = {
    "book_appointment": "booked",
    "reschedule_appointment": "rescheduled",
    "cancel_appointment": "cancelled",
    "confirm_appointment": "confirmed",
}
"""Tools that change an appointment, and the key of the change in their output."""

USER_TEXT_LIMIT = 4000


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text[:USER_TEXT_LIMIT]}


def assistant_message(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def upgrade_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items from a state saved by the Chat Completions loop, in the Responses shapes.

    Chat messages ``{"role": "assistant", "tool_calls": [...]}`` and ``{"role": "tool"}`` become
    function calls and outputs; plain messages are already valid input items.
    """
    if not any("tool_calls" in item or item.get("role") == "tool" for item in history):
        return history
    upgraded: list[dict[str, Any]] = []
    for item in history:
        if item.get("role") == "tool":
            upgraded.append(function_output(item["tool_call_id"], str(item.get("content") or "")))
            continue
        if item.get("role") == "assistant" and "tool_calls" in item:
            if item.get("content"):
                upgraded.append(assistant_message(item["content"]))
            for call in item["tool_calls"]:
                fn = call["function"]
                upgraded.append(function_call(call["id"], fn["name"], fn["arguments"]))
            continue
        upgraded.append(item)
    return upgraded


def withhold_unconfirmed(name: str, arguments: dict[str, Any], patient_said_yes: bool) -> bool:
    """The yes-lock in code: drop a confirmation the patient did not give in this very message.

    Returns whether a confirmation was withheld (``arguments`` is changed in place).
    """
    if name not in CONFIRMED_ACTIONS or patient_said_yes:
        return False
    if arguments.get("confirmed_by_patient"):
        logger.info("%s: confirmation without a yes from the patient was withheld", name)
        arguments["confirmed_by_patient"] = False
        return True
    return False


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """The model's arguments as a JSON object, or ``None`` when they are not one."""
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
