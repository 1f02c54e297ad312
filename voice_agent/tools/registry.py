"""A registry of typed async tools. Schemas come from signatures and docstrings; arguments are
validated with pydantic before dispatch; each call has a timeout; errors become words.

A tool is ``async def name(ctx: ToolContext, arg: Annotated[T, Field(description=…)], …)``.
The first parameter is injected by the channel and never appears in the schema, so the model can
neither see nor forge who the caller is.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from voice_agent.metrics import TOOL_SECONDS

if TYPE_CHECKING:
    from voice_agent.tools.context import ToolContext

logger = logging.getLogger(__name__)

ToolFunction = Callable[..., Awaitable[Any]]

NEUTRAL_ERROR = (
    "Something went wrong on our side. Apologise briefly, do not retry this action now, and "
    "offer to transfer the caller to the clinic staff or to try again later."
)


class ToolError(Exception):
    """An expected failure whose message the model may read and say to the patient."""

    def __init__(
        self, message: str, *, code: str = "tool_error", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
        """More for the model next to the message (e.g. new options after a time was taken)."""


@dataclass(frozen=True)
class ToolResult:
    """What a channel hands back to the model: always JSON, never an exception."""

    name: str
    ok: bool
    output: dict[str, Any]
    duration_ms: float
    error_code: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.output, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    arguments: type[BaseModel]
    function: ToolFunction
    timeout: float | None

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments; a fresh copy of a schema built once (building it
        is most of a call's set-up time: pydantic walks every field)."""
        return copy.deepcopy(self._schema)

    @cached_property
    def _schema(self) -> dict[str, Any]:
        return _clean_schema(self.arguments.model_json_schema())


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ToolRegistry:
    def __init__(self, default_timeout: float = 10.0) -> None:
        self._tools: dict[str, ToolSpec] = {}
        self.default_timeout = default_timeout

    def tool(self, function: ToolFunction | None = None, *, timeout: float | None = None) -> Any:
        """Decorator registering an async tool; usable bare or with ``timeout=``."""

        def register(fn: ToolFunction) -> ToolFunction:
            self.add(fn, timeout=timeout)
            return fn

        return register(function) if function is not None else register

    def add(self, function: ToolFunction, *, timeout: float | None = None) -> ToolSpec:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"tool {function.__name__} must be async")
        name = function.__name__
        if name in self._tools:
            raise ValueError(f"tool {name} registered twice")
        spec = ToolSpec(
            name=name,
            description=inspect.cleandoc(function.__doc__ or "").strip(),
            arguments=_arguments_model(function),
            function=function,
            timeout=timeout,
        )
        if not spec.description:
            raise ValueError(f"tool {name} needs a docstring: it is the model's only guide")
        self._tools[name] = spec
        return spec

    def names(self) -> list[str]:
        return list(self._tools)

    def spec(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def subset(self, names: list[str]) -> ToolRegistry:
        """A registry with only some tools (e.g. a confirmation call's tools)."""
        other = ToolRegistry(self.default_timeout)
        for name in names:
            other._tools[name] = self._tools[name]
        return other

    def realtime_schemas(self) -> list[dict[str, Any]]:
        """Tools in the shape of the Realtime API's ``session.tools``."""
        return [
            {
                "type": "function",
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            }
            for spec in self._tools.values()
        ]

    async def dispatch(
        self, name: str, arguments: str | dict[str, Any] | None, ctx: ToolContext
    ) -> ToolResult:
        """Validate and run one tool call; every failure becomes a result the model can use."""
        result = await self._dispatch(name, arguments, ctx)
        known = name if name in self._tools else "unknown"
        TOOL_SECONDS.labels(known, str(result.ok).lower()).observe(result.duration_ms / 1000)
        return result

    async def _dispatch(
        self, name: str, arguments: str | dict[str, Any] | None, ctx: ToolContext
    ) -> ToolResult:
        started = time.perf_counter()
        spec = self._tools.get(name)
        if spec is None:
            return self._fail(
                name,
                started,
                "unknown_tool",
                f"There is no tool named {name!r}. Use only the listed tools.",
            )
        try:
            raw = _parse_arguments(arguments)
            validated = spec.arguments.model_validate(raw)
        except ValueError as exc:
            return self._fail(name, started, "invalid_arguments", _argument_problem(exc))
        kwargs = {field: getattr(validated, field) for field in spec.arguments.model_fields}
        timeout = spec.timeout or self.default_timeout
        try:
            with ctx.acting():  # interaction rows written by the tool name this caller
                output = await asyncio.wait_for(spec.function(ctx, **kwargs), timeout)
        except ToolError as exc:
            await ctx.record_tool(name, kwargs, {"error": exc.message}, ok=False)
            return self._fail(name, started, exc.code, exc.message, exc.details)
        except TimeoutError:
            logger.error("tool %s timed out after %.1fs", name, timeout)
            await ctx.report_failure(
                f"tool {name} timed out after {timeout:.0f}s", alert="tool_timeout", tool=name
            )
            return self._fail(
                name,
                started,
                "timeout",
                "The system is slow right now. Apologise and offer to try again "
                "in a moment or to transfer to the staff.",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("tool %s failed unexpectedly", name)
            await ctx.report_failure(
                f"tool {name} failed: {type(exc).__name__}", alert="tool_error", tool=name
            )
            return self._fail(name, started, "internal_error", NEUTRAL_ERROR)
        if not isinstance(output, dict):
            output = {"result": output}
        await ctx.record_tool(name, kwargs, output, ok=True)
        return ToolResult(name, True, output, _elapsed(started))

    @staticmethod
    def _fail(
        name: str,
        started: float,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> ToolResult:
        output = {**(details or {}), "error": message}
        return ToolResult(name, False, output, _elapsed(started), error_code=code)


def _elapsed(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _parse_arguments(arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        raise ValueError("the arguments were not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError("the arguments must be a JSON object")
    return parsed


def _argument_problem(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "arguments"
            problems.append(f"{where}: {error['msg']}")
        return "Invalid arguments: " + "; ".join(problems) + ". Fix them and call again."
    return f"Invalid arguments: {exc}. Fix them and call again."


def _arguments_model(function: ToolFunction) -> type[BaseModel]:
    signature = inspect.signature(function)
    hints = get_type_hints(function, include_extras=True)
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].name != "ctx":
        raise TypeError(f"tool {function.__name__}: first parameter must be ctx: ToolContext")
    fields: dict[str, Any] = {}
    for parameter in parameters[1:]:
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    model_name = "".join(part.title() for part in function.__name__.split("_")) + "Arguments"
    return create_model(model_name, __base__=_Arguments, **fields)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles (noise for the model) and inline nothing else."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    cleaned = walk(schema)
    cleaned.setdefault("properties", {})
    cleaned["additionalProperties"] = False
    return cleaned
