"""Load a clinic YAML file into a `Clinic`; invalid files are refused with path and reason."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from voice_agent.clinic.model import Clinic
from voice_agent.errors import ClinicFileError

MAX_CLINIC_FILE_CHARS = 5_000_000
"""A real clinic file is tens of kilobytes; anything near this is a mistake or an attack."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML has it (ten times faster: every start-up and every clinic
version read parses the file), with the same safe constructor."""


def parse_clinic(text: str, source: str = "<clinic>") -> Clinic:
    if len(text) > MAX_CLINIC_FILE_CHARS:
        raise ClinicFileError(source, [f"larger than {MAX_CLINIC_FILE_CHARS} characters"])
    try:
        data = yaml.load(text, Loader=_LOADER)  # a safe loader (SafeConstructor)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml stops at 1000 levels
            raise ClinicFileError(source, ["not valid YAML: nested too deeply"]) from None
        raise ClinicFileError(source, [f"not valid YAML: {exc}"]) from None
    except RecursionError:  # "[[[[…" nested thousands deep: the parser recurses per level
        raise ClinicFileError(source, ["not valid YAML: nested too deeply"]) from None
    if not isinstance(data, dict):
        raise ClinicFileError(source, ["top level must be a mapping of clinic fields"])
    try:
        return Clinic.model_validate(data)
    except ValidationError as exc:
        raise ClinicFileError(source, [_describe(error) for error in exc.errors()]) from None


def load_clinic_file(path: Path | str) -> Clinic:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ClinicFileError(str(path), ["not UTF-8 text"]) from None
    except OSError as exc:
        raise ClinicFileError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse_clinic(text, str(path))


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"
