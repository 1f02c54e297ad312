"""Strict checks of Realtime API events against the installed openai SDK's GA models.

The SDK's pydantic models accept unknown keys (``extra="allow"``), so a misspelled field such as
``silence_duraton_ms`` would validate and then be silently ignored by the real API. Every
check here is ``TypeAdapter`` validation plus a recursive walk of ``model_extra``.

Validation goes through the model of the event's ``type`` (taken from the
``RealtimeClientEvent`` / ``RealtimeServerEvent`` unions): the same models as validating the
whole union, but one model instead of ~40 tries per event and an error that names the field.
An unknown ``type`` is validated against the whole union, which reports it.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

__all__ = ["EventProblem", "validate_client_event", "validate_server_event"]


@dataclass(frozen=True, slots=True)
class EventProblem:
    """Why an event is invalid, shaped like the real API's ``error`` payload."""

    code: str
    message: str
    param: str | None = None


def _members(union: Any) -> dict[str, TypeAdapter[Any]]:
    """Map each event ``type`` literal of a discriminated union to its own adapter."""
    plain = typing.get_args(union)[0]  # strip Annotated[..., PropertyInfo]
    adapters: dict[str, TypeAdapter[Any]] = {}
    for model in typing.get_args(plain):
        (literal,) = typing.get_args(model.model_fields["type"].annotation)
        adapters[literal] = TypeAdapter(model)
    return adapters


_CLIENT_UNION: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)
_SERVER_UNION: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
_CLIENT_BY_TYPE = _members(RealtimeClientEvent)
_SERVER_BY_TYPE = _members(RealtimeServerEvent)


def unknown_fields(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of keys the models did not declare, anywhere in a validated value."""
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            yield f"{path}{key}"
        for name in type(value).model_fields:
            yield from unknown_fields(getattr(value, name), f"{path}{name}.")
    elif isinstance(value, (list, tuple)):
        for index, element in enumerate(value):
            yield from unknown_fields(element, f"{path}{index}.")


def _problem_from(exc: ValidationError) -> EventProblem:
    first = exc.errors(include_url=False)[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    summary = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_url=False)[:3]
    )
    return EventProblem(code, f"Invalid event: {summary}", param)


def _validate(
    data: Any, by_type: dict[str, TypeAdapter[Any]], union: TypeAdapter[Any]
) -> tuple[Any, EventProblem | None]:
    if not isinstance(data, dict):
        return None, EventProblem("invalid_json", "Event is not a JSON object")
    adapter = by_type.get(data.get("type"))  # type: ignore[arg-type]
    try:
        event = (adapter or union).validate_python(data)
    except ValidationError as exc:
        if adapter is None:
            return None, EventProblem(
                "invalid_value", f"Invalid value: {data.get('type')!r} is not a known event type."
            )
        return None, _problem_from(exc)
    extras = list(unknown_fields(event))
    if extras:
        return event, EventProblem(
            "unknown_parameter", f"Unknown parameter: '{extras[0]}'.", extras[0]
        )
    return event, None


def validate_client_event(raw: str | bytes) -> tuple[Any, EventProblem | None]:
    """Parse and validate one client event; returns ``(event model or None, problem)``."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None, EventProblem("invalid_json", "The server could not parse the event as JSON")
    return _validate(data, _CLIENT_BY_TYPE, _CLIENT_UNION)


def validate_server_event(data: dict[str, Any]) -> EventProblem | None:
    """Check an event the fake is about to send, so the fake cannot drift from the API."""
    return _validate(data, _SERVER_BY_TYPE, _SERVER_UNION)[1]
