"""The registry's tools in the Responses API's function-tool shape, in strict mode.

Strict mode makes the model's arguments always match the schema (no missing required key, no
invented one), but it wants every property listed in ``required`` and no ``default``. Optional
arguments therefore become required-but-nullable here, and a ``null`` the model sends for one
is dropped before dispatch so the tool's own default applies. Keywords strict mode does not
take (string lengths) are left out of what the model sees; the registry still validates them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from openai.types.responses import FunctionToolParam

UNSUPPORTED = ("default", "minLength", "maxLength", "title")


def strict_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON schema that strict mode accepts (see the module docstring)."""
    return _strict(copy.deepcopy(schema))


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    for key in UNSUPPORTED:
        node.pop(key, None)
    for key, value in list(node.items()):
        if key in ("properties", "$defs"):
            node[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            node[key] = _strict(value)
    if node.get("type") == "object":
        properties: dict[str, Any] = node.setdefault("properties", {})
        required = set(node.get("required", []))
        for name, sub in properties.items():
            if name not in required:
                properties[name] = _nullable(sub)
        node["required"] = list(properties)
        node["additionalProperties"] = False
    return node


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in node:
        if not any(option.get("type") == "null" for option in node["anyOf"]):
            node["anyOf"].append({"type": "null"})
        return node
    description = node.pop("description", None)
    wrapped: dict[str, Any] = {"anyOf": [node, {"type": "null"}]}
    if description:
        wrapped["description"] = description
    return wrapped


def function_tools(specs: Iterable[dict[str, Any]]) -> list[FunctionToolParam]:
    """Realtime-shaped specs (``name``, ``description``, ``parameters``) as strict tools."""
    return [
        FunctionToolParam(
            type="function",
            name=spec["name"],
            description=spec["description"],
            parameters=strict_parameters(spec["parameters"]),
            strict=True,
        )
        for spec in specs
    ]


def optional_arguments(specs: Iterable[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """Per tool, the top-level arguments that were optional before strict mode."""
    return {
        spec["name"]: frozenset(spec["parameters"].get("properties", {}))
        - frozenset(spec["parameters"].get("required", []))
        for spec in specs
    }


def drop_nulls(arguments: dict[str, Any], optional: frozenset[str]) -> dict[str, Any]:
    """Strict mode's ``null`` for an optional argument means "not given": use the default."""
    return {k: v for k, v in arguments.items() if not (v is None and k in optional)}
