"""Strict checks of Responses API requests and stream events against the installed openai SDK.

Requests are validated with the SDK's own param types
(``ResponseCreateParamsStreaming`` / ``ResponseCreateParamsNonStreaming``, TypedDicts) through
pydantic's ``TypeAdapter``. A TypedDict lets unknown keys through, so a misspelled key
(``previous_respone_id``, ``paralel_tool_calls``) would pass and then be refused by the real
API: ``unknown_keys`` walks the request along the same types and names every key no type
declares. Events the fake sends are validated with the SDK's ``ResponseStreamEvent`` models, so
the fake cannot drift from the API either.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any, NotRequired, Required, Union

from openai.types.responses import ResponseStreamEvent
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)
from pydantic import TypeAdapter, ValidationError
from typing_extensions import ReadOnly, is_typeddict

from tests.fakes.realtime_validation import unknown_fields

__all__ = ["event_problem", "request_problem", "unknown_keys"]

_WRAPPERS = {Required, NotRequired, ReadOnly, typing.Annotated}
_SEQUENCES = {list, tuple, Iterable, typing.Sequence, typing.Iterable}


def _plain(tp: Any) -> Any:
    while typing.get_origin(tp) in _WRAPPERS:
        tp = typing.get_args(tp)[0]
    return tp


@cache
def _hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp, include_extras=True)


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def _fits(value: Any, tp: Any) -> bool:
    tp = _plain(tp)
    if is_typeddict(tp) and isinstance(value, dict) and "type" in value:
        declared = _plain(_hints(tp).get("type"))
        literal = typing.get_origin(declared) is typing.Literal
        if literal and value["type"] not in typing.get_args(declared):
            return False
    try:
        _force(_adapter(tp).validate_python(value))
    except (ValidationError, TypeError):
        return False
    return True


def _force(value: Any) -> None:
    """Pydantic validates ``Iterable[...]`` fields lazily: consume them so errors surface."""
    if isinstance(value, dict):
        for sub in value.values():
            _force(sub)
    elif isinstance(value, (list, tuple)) or (
        not isinstance(value, (str, bytes)) and hasattr(value, "__next__")
    ):
        for sub in value:
            _force(sub)


def unknown_keys(value: Any, tp: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of keys in ``value`` that the param type ``tp`` does not declare."""
    tp = _plain(tp)
    origin = typing.get_origin(tp)
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return
        hints = _hints(tp)
        for key, sub in value.items():
            if key not in hints:
                yield f"{path}{key}"
            else:
                yield from unknown_keys(sub, hints[key], f"{path}{key}.")
    elif origin in (Union, types.UnionType):
        best: list[str] | None = None
        for member in typing.get_args(tp):
            if member is type(None) or not _fits(value, member):
                continue
            extras = list(unknown_keys(value, member, path))
            if best is None or len(extras) < len(best):
                best = extras
            if not extras:
                break
        yield from best or []
    elif (origin in _SEQUENCES or _is_sequence_protocol(origin)) and isinstance(value, list):
        args = typing.get_args(tp)
        if args:
            for index, sub in enumerate(value):
                yield from unknown_keys(sub, args[0], f"{path}{index}.")


def _is_sequence_protocol(origin: Any) -> bool:
    """The SDK's ``SequenceNotStr[...]`` (a Protocol) is a list on the wire."""
    return getattr(origin, "__name__", "") == "SequenceNotStr"


def request_problem(body: Any) -> str | None:
    """Why a ``POST /v1/responses`` body would be refused, or ``None`` when it is valid."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    params = (
        ResponseCreateParamsStreaming if body.get("stream") else ResponseCreateParamsNonStreaming
    )
    try:
        _force(_adapter(params).validate_python(body))
    except ValidationError as exc:
        # Of a union's failed members, the deepest error names the field that is wrong.
        first = max(exc.errors(include_url=False), key=lambda error: len(error["loc"]))
        where = ".".join(str(part) for part in first["loc"])
        return f"invalid {where}: {first['msg']}"
    extras = list(unknown_keys(body, params))
    if extras:
        return f"Unknown parameter: '{extras[0]}'."
    return None


def _members(union: Any) -> dict[str, TypeAdapter[Any]]:
    plain = typing.get_args(union)[0]  # strip Annotated[..., PropertyInfo]
    adapters: dict[str, TypeAdapter[Any]] = {}
    for model in typing.get_args(plain):
        (literal,) = typing.get_args(model.model_fields["type"].annotation)
        adapters[literal] = TypeAdapter(model)
    return adapters


_EVENTS = _members(ResponseStreamEvent)


def event_problem(event: dict[str, Any]) -> str | None:
    """Why a stream event the fake is about to send is not one the SDK models."""
    adapter = _EVENTS.get(event.get("type", ""))
    if adapter is None:
        return f"unknown event type {event.get('type')!r}"
    try:
        model = adapter.validate_python(event)
    except ValidationError as exc:
        return f"{event['type']}: {exc.errors(include_url=False)[0]}"
    extras = list(unknown_fields(model))
    return f"{event['type']}: unknown field {extras[0]}" if extras else None


def warm_up() -> None:
    """Build the adapters a text turn needs now: building them takes longer than a short
    client timeout, and would otherwise happen inside the first requests."""
    tool = {"type": "function", "name": "t", "parameters": {}, "strict": True, "description": "d"}
    request_problem(
        {
            "model": "m",
            "stream": True,
            "instructions": "i",
            "tools": [tool],
            "reasoning": {"effort": "low"},
            "text": {"verbosity": "low"},
            "input": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"type": "function_call", "call_id": "c", "name": "t", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "{}"},
                {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "x"},
            ],
        }
    )
