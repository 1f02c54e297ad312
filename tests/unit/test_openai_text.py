"""Pure parts of the OpenAI text receptionist: strict tool schemas, the model-family table,
the yes-lock and the upgrade of histories saved by the Chat Completions loop."""

from __future__ import annotations

from typing import Any

import pytest
from openai import omit

from tests.fakes.openai_responses import _strict_problem
from voice_agent.conversation.openai_text.items import upgrade_history, withhold_unconfirmed
from voice_agent.conversation.openai_text.models import model_options, traits
from voice_agent.conversation.openai_text.schemas import (
    drop_nulls,
    function_tools,
    optional_arguments,
    strict_parameters,
)
from voice_agent.tools.catalog import build_registry, text_registry

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "$defs": {"Weekday": {"enum": ["mon", "tue"], "type": "string"}},
    "properties": {
        "service": {"type": "string", "maxLength": 80, "description": "Service."},
        "doctor": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "dates": {"type": "array", "default": [], "items": {"type": "string", "format": "date"}},
        "weekdays": {"type": "array", "items": {"$ref": "#/$defs/Weekday"}, "default": []},
    },
    "required": ["service"],
}


def test_optional_arguments_become_required_and_nullable() -> None:
    strict = strict_parameters(SCHEMA)
    assert strict["required"] == ["service", "doctor", "dates", "weekdays"]
    assert strict["properties"]["service"] == {"type": "string", "description": "Service."}
    assert strict["properties"]["doctor"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert strict["properties"]["dates"]["anyOf"][1] == {"type": "null"}
    assert "default" not in str(strict) and SCHEMA["properties"]["dates"]["default"] == []
    assert optional_arguments([{"name": "f", "parameters": SCHEMA}]) == {
        "f": frozenset({"doctor", "dates", "weekdays"})
    }
    given = {"service": "x", "doctor": None, "dates": None, "weekdays": ["mon"]}
    assert drop_nulls(given, frozenset({"doctor", "dates", "weekdays"})) == {
        "service": "x",
        "weekdays": ["mon"],
    }


def test_every_text_tool_is_a_strict_schema_the_api_accepts() -> None:
    tools = function_tools(text_registry(build_registry()).realtime_schemas())
    assert tools and all(tool["strict"] for tool in tools)
    assert [name for tool in tools if (name := _strict_problem(dict(tool)))] == []


@pytest.mark.parametrize(
    ("model", "effort", "verbosity", "temperature"),
    [
        ("gpt-4.1-mini", False, False, True),
        ("gpt-4o", False, False, True),
        ("gpt-5-mini", True, True, False),
        ("gpt-5.2", False, True, False),  # "minimal" is not a gpt-5.1+ effort
        ("gpt-5-chat-latest", False, False, True),
        ("o4-mini", True, False, False),
        ("some-future-model", False, False, False),
    ],
)
def test_optional_parameters_go_only_where_the_family_takes_them(
    model: str, effort: bool, verbosity: bool, temperature: bool
) -> None:
    options = model_options(model, "minimal" if model.startswith("gpt-5") else "low", "low")
    assert (options.reasoning is not omit) is effort
    assert (options.text is not omit) is verbosity
    assert (options.temperature is not omit) is temperature
    assert traits("GPT-5-MINI") == traits("gpt-5-mini")


def test_the_yes_lock_withholds_a_confirmation_without_a_yes() -> None:
    arguments = {"option": "2", "confirmed_by_patient": True}
    assert withhold_unconfirmed("book_appointment", arguments, patient_said_yes=False)
    assert arguments["confirmed_by_patient"] is False
    kept = {"option": "2", "confirmed_by_patient": True}
    assert not withhold_unconfirmed("book_appointment", kept, patient_said_yes=True)
    assert not withhold_unconfirmed("find_slots", {"confirmed_by_patient": True}, False)


def test_a_chat_completions_history_is_upgraded() -> None:
    old = [
        {"role": "user", "content": "oi"},
        {
            "role": "assistant",
            "content": "Um momento.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
    ]
    assert upgrade_history(old) == [
        {"role": "user", "content": "oi"},
        {"role": "assistant", "content": "Um momento."},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "{}"},
    ]
    assert upgrade_history(old[:1]) == old[:1]
