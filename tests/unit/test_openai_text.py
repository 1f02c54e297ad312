"""Pure parts of the OpenAI text receptionist: strict tool schemas, the model-family table,
the yes-lock and the upgrade of histories saved by the Chat Completions loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.openai_responses import _strict_problem
from voice_agent.conversation.openai_text.items import upgrade_history, withhold_unconfirmed
from voice_agent.conversation.openai_text.models import model_options, traits
from voice_agent.conversation.openai_text.schemas import (
    drop_nulls,
    function_tools,
    optional_arguments,
    strict_parameters,
)
from voice_agent.conversation.openai_text.stream import StreamFailed, read_round
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
    assert ("reasoning" in options) is effort
    assert ("text" in options) is verbosity
    assert ("temperature" in options) is temperature
    assert "include" not in options  # only with store off, for reasoning models
    unstored = model_options(model, None, None, store=False)
    assert ("include" in unstored) is bool(traits(model).efforts)
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


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


class _Heard:
    def __init__(self) -> None:
        self.said: list[str] = []

    async def text(self, delta: str) -> None:
        self.said.append(delta)

    async def working(self, tool: str) -> None:
        self.said.append(f"[{tool}]")

    async def discard(self) -> None:
        self.said.clear()


def _event(payload: dict[str, Any]) -> tuple[str, str, str]:
    return (f"event: {payload['type']}", "data: " + json.dumps(payload), "")


async def test_a_round_is_read_from_the_event_lines() -> None:
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "c1",
        "name": "find_slots",
        "arguments": "{}",
        "status": "completed",
    }
    message = {
        "type": "message",
        "id": "m1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Vou ver.", "annotations": []}],
    }
    heard = _Heard()
    found = await read_round(
        _lines(
            ": keep-alive",
            *_event({"type": "response.output_text.delta", "delta": "Vou "}),
            *_event({"type": "response.output_text.delta", "delta": "ver."}),
            *_event({"type": "response.output_item.added", "item": {**call, "arguments": ""}}),
            *_event(
                {
                    "type": "response.completed",
                    "response": {"id": "resp_1", "output": [message, call]},
                }
            ),
        ),
        heard,
        lead="\n\n",
    )
    assert heard.said == ["\n\n", "Vou ", "ver.", "[find_slots]"]
    assert found.response_id == "resp_1" and found.text == "Vou ver."
    assert [c.call_id for c in found.calls] == ["c1"] and found.output == [message, call]


@pytest.mark.parametrize(
    "lines",
    [
        ("data: {not json", ""),
        ("data: [1, 2]", ""),
        _event({"type": "response.completed", "response": {"output": []}}),
        _event(
            {
                "type": "response.completed",
                "response": {"id": "r", "output": [{"type": "function_call", "name": "x"}]},
            }
        ),
        _event({"type": "response.failed", "response": {"error": {"code": "server_error"}}}),
        _event({"type": "error", "code": "rate_limit_exceeded", "message": "slow down"}),
        _event({"type": "response.output_text.delta", "delta": "half an answer"}),
    ],
    ids=["not-json", "not-object", "no-id", "bad-call", "failed", "error", "no-completed"],
)
async def test_a_broken_stream_raises(lines: tuple[str, ...]) -> None:
    with pytest.raises(StreamFailed):
        await read_round(_lines(*lines), None)


async def test_the_echoing_events_are_not_decoded_but_every_other_is() -> None:
    completed = {
        "type": "response.completed",
        "response": {"id": "resp_1", "output": [], "status": "completed"},
    }
    # response.created echoes instructions and tools: skipped by its event line, undecoded.
    lines = _lines("event: response.created", "data: {not json", "", *_event(completed))
    found = await read_round(lines, None)
    assert found.response_id == "resp_1"
    # The same bytes under any other name are read, and fail loudly.
    with pytest.raises(StreamFailed, match="not JSON"):
        await read_round(_lines("event: response.output_text.delta", "data: {not json", ""), None)
