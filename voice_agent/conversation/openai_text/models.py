"""What each text model family accepts beyond the basics, so a setting is sent only where valid.

The Responses API refuses a request with a parameter the model does not take (``reasoning`` on
``gpt-4.1``, ``temperature`` on ``gpt-5``, ``text.verbosity`` on ``o3``), so the table decides,
not the caller. Families are matched by the longest prefix of the model name; an unknown model
gets none of the optional parameters (every model accepts that request).

| family              | reasoning effort                      | verbosity | temperature |
|---------------------|---------------------------------------|-----------|-------------|
| gpt-5.1 … gpt-6     | none, low, medium, high, xhigh        | yes       | no          |
| gpt-5 (-mini/-nano) | minimal, low, medium, high            | yes       | no          |
| gpt-5*-chat         | —                                     | no        | yes         |
| o1, o3, o4-mini     | low, medium, high                     | no        | no          |
| gpt-4.1, gpt-4o     | —                                     | no        | yes         |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from openai.types.responses import ResponseTextConfigParam
from openai.types.responses.response_create_params import ResponseCreateParamsBase
from openai.types.shared_params import Reasoning

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelTraits:
    efforts: frozenset[str] = frozenset()
    """Reasoning efforts the family takes; empty: no ``reasoning`` parameter at all."""
    verbosity: bool = False
    temperature: bool = False

    @property
    def reasons(self) -> bool:
        return bool(self.efforts)


_GPT5 = ModelTraits(frozenset({"minimal", "low", "medium", "high"}), verbosity=True)
_GPT51 = ModelTraits(frozenset({"none", "low", "medium", "high", "xhigh"}), verbosity=True)
_O_SERIES = ModelTraits(frozenset({"low", "medium", "high"}))
_CHAT = ModelTraits(temperature=True)

FAMILIES: tuple[tuple[str, ModelTraits], ...] = (
    ("gpt-5-chat", _CHAT),
    ("gpt-5.1-chat", _CHAT),
    ("gpt-5.2-chat", _CHAT),
    ("gpt-5.3-chat", _CHAT),
    ("gpt-5.", _GPT51),
    ("gpt-6", _GPT51),
    ("gpt-5", _GPT5),
    ("o1", _O_SERIES),
    ("o3", _O_SERIES),
    ("o4", _O_SERIES),
    ("gpt-4.1", _CHAT),
    ("gpt-4o", _CHAT),
)

TEMPERATURE = 0.3
"""Receptionist replies should vary little; only sent to models that take a temperature."""


def traits(model: str) -> ModelTraits:
    """The traits of ``model``'s family (the longest matching prefix wins)."""
    name = model.lower()
    best = ""
    found = ModelTraits()
    for prefix, family in FAMILIES:
        if name.startswith(prefix) and len(prefix) > len(best):
            best, found = prefix, family
    return found


def model_options(
    model: str, effort: str | None, verbosity: str | None, *, store: bool = True
) -> ResponseCreateParamsBase:
    """The optional request parameters ``model`` takes, from the configured settings."""
    family = traits(model)
    options: ResponseCreateParamsBase = {}
    if effort is not None:
        if effort in family.efforts:
            options["reasoning"] = cast(Reasoning, {"effort": effort})
        else:
            logger.warning("%s does not take reasoning effort %r: not sent", model, effort)
    if verbosity is not None:
        if family.verbosity:
            options["text"] = cast(ResponseTextConfigParam, {"verbosity": verbosity})
        else:
            logger.warning("%s does not take a verbosity: not sent", model)
    if family.temperature:
        options["temperature"] = TEMPERATURE
    if family.reasons and not store:
        # Without store, a reasoning model's reasoning can follow its function calls into the
        # next request only in the encrypted form OpenAI hands back.
        options["include"] = ["reasoning.encrypted_content"]
    return options
